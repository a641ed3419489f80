"""Evidence that MiniLM's pre-trained weights help: same recipe, pre-trained vs random init.

The task is `tfptm.datasets.reviews`: generated offline, with train and test
splits that share no adjectives, nouns or templates. A random-init copy of
the same architecture, trained the same way, sees only unknown words.
"""

import time

import keras
import tensorflow as tf

import tfptm
from tfptm.datasets.reviews import VOCABULARY, load_reviews

SEQUENCE_LENGTH = 32


def _train_and_score(backbone, train, test):
    """The one recipe both backbones get: head on the [CLS] token, top 2 Transformer blocks train."""
    keras.utils.set_random_seed(0)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first"))
    data = tf.data.Dataset.from_tensor_slices(train).shuffle(64, seed=0).batch(16)
    tfptm.finetune(model, data, tfptm.training.partial(EPOCHS, top_blocks=2, learning_rate=1e-4), verbose=0)
    # tfptm.evaluate takes array features; KerasHub backbones take a dict, so score by hand.
    predictions = model.predict(test[0], batch_size=64, verbose=0).argmax(axis=-1)
    return float((predictions == test[1]).mean())


EPOCHS = 4


def test_pretrained_minilm_beats_random_init(minilm_dir):
    import keras_hub

    started = time.monotonic()
    pretrained, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir, sequence_length=SEQUENCE_LENGTH)
    # The same architecture with fresh weights: KerasHub's BertBackbone from the preset's own config.
    bert = keras_hub.models.Backbone.from_preset(minilm_dir)
    keras.utils.set_random_seed(1)
    random_init = tfptm.backbones.presets.features_model(bert.__class__.from_config(bert.get_config()))
    assert random_init.count_params() == pretrained.count_params()

    def tokenize(texts):
        return {k: v.numpy() for k, v in preprocessor(texts).items()}

    (x_train, y_train), (x_test, y_test) = load_reviews("train", 64, seed=0), load_reviews("test", 64, seed=1)
    test_adjectives = VOCABULARY["test"]["positive"] + VOCABULARY["test"]["negative"]
    assert not set(" ".join(x_train).split()) & set(test_adjectives)
    train, test = (tokenize(x_train), y_train), (tokenize(x_test), y_test)
    pretrained_accuracy = _train_and_score(pretrained, train, test)
    random_accuracy = _train_and_score(random_init, train, test)
    print(f"pre-trained {pretrained_accuracy:.3f} vs random init {random_accuracy:.3f} in {time.monotonic() - started:.0f} s")
    assert pretrained_accuracy >= 0.8
    assert pretrained_accuracy >= random_accuracy + 0.2
