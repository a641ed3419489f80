"""Text-pair classification: does text B answer, follow, paraphrase or contradict text A?

The model is the single-text classifier's: a backbone on KerasHub's inputs
(`token_ids`, `padding_mask`, `segment_ids`) and a `tfptm.Head` on the first
token (`[CLS]`). What differs is the input: a pair is packed as
`[CLS] a [SEP] b [SEP]` with `segment_ids` 0 then 1 (`tfptm.data.pairs`), and
the serving signature `raw_text_pairs` takes two string tensors, `text_a` and
`text_b`, tokenized inside the graph by a `PairTokenizer`.

The whole path, as tests/test_pairs.py runs it:

    backbone, preprocessor = tfptm.backbones.presets.load_preset(minilm_dir)
    table = tfptm.data.pairs.read_pair_table("pairs.csv")            # text_a, text_b, label
    data = tfptm.data.pairs.pair_dataset(table, preprocessor, max_length=128)
    model = pair_classifier(backbone, num_classes=len(data.class_names))
    tfptm.finetune(model, data.train, tfptm.training.full(3, 5e-5), validation_data=data.validation)
    tfptm.export.tasks.export_pairs(model, preprocessor, "export", "pairs", texts_a, texts_b, labels)  # checked

Example (a tiny model):
>>> import numpy as np, keras_hub, tfptm
>>> from tfptm.data.pairs import pair_batches
>>> vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "open", "file", "plot", "line"]
>>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary)
>>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=len(vocabulary), num_layers=1,
...                                hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
>>> model = pair_classifier(backbone, num_classes=2)
>>> data = pair_batches(["open file", "plot line"], ["file", "file"], [1, 0], tokenizer, max_length=16, seed=0)
>>> history = tfptm.finetune(model, data, tfptm.training.full(1, 1e-3), verbose=0)
>>> len(history["loss"])
1
"""

import keras
import tensorflow as tf

from tfptm.build import build_model
from tfptm.data.pairs import pair_preprocessor
from tfptm.errors import TfptmError
from tfptm.heads import Head

TEXT_INPUTS = ("text_a", "text_b")


@keras.saving.register_keras_serializable(package="tfptm")
class PairTokenizer(keras.layers.Layer):
    """Maps two string tensors `(texts_a, texts_b)`, each `(batch,)`, to the backbone's input dict, in the graph.

    Wraps a KerasHub `TextClassifierPreprocessor` (from
    `tfptm.data.pairs.pair_preprocessor`): `[CLS] a [SEP] b [SEP]`,
    `segment_ids`, padding to its `sequence_length`, round-robin truncation.
    `text_inputs` names the two inputs of the SavedModel signature that
    `tfptm.export.saved_model(..., tokenizer=pair_tokenizer)` writes
    (`raw_text_pairs`). Make one with `pair_tokenizer`.
    """

    text_inputs = TEXT_INPUTS

    def __init__(self, preprocessor, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        if isinstance(preprocessor, dict):
            preprocessor = keras.saving.deserialize_keras_object(preprocessor)
        self.preprocessor = preprocessor
        self.built = True  # no weights: the vocabulary lives in the tokenizer's lookup tables

    @property
    def sequence_length(self):
        return self.preprocessor.sequence_length

    def call(self, texts):
        if not isinstance(texts, (tuple, list)) or len(texts) != 2:
            raise TfptmError("PairTokenizer: expected two string tensors (texts_a, texts_b)")
        a, b = (tf.reshape(tf.convert_to_tensor(t, dtype=tf.string), [-1]) for t in texts)
        packed = self.preprocessor(x=(a, b))
        return {key: packed[key] for key in ("token_ids", "padding_mask", "segment_ids")}

    def get_config(self):
        return {**super().get_config(), "preprocessor": keras.saving.serialize_keras_object(self.preprocessor)}


def pair_tokenizer(tokenizer, max_length=128):
    """A `PairTokenizer` for `tokenizer` (a preset's preprocessor, a KerasHub tokenizer or a wordpiece `TextTokenizer`).

    Example:
    >>> import keras_hub, tensorflow as tf
    >>> tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
    >>> packed = pair_tokenizer(tokenizer, max_length=6)((tf.constant(["a"]), tf.constant(["b"])))
    >>> packed["token_ids"].numpy().tolist(), packed["segment_ids"].numpy().tolist()
    ([[2, 5, 3, 6, 3, 0]], [[0, 0, 0, 1, 1, 0]])
    """
    if isinstance(tokenizer, PairTokenizer):
        return tokenizer
    return PairTokenizer(pair_preprocessor(tokenizer, max_length), name="pair_tokenizer")


def pair_classifier(backbone, num_classes=2, head=None, optimizer="adam", learning_rate=1e-3, name="pair_classifier"):
    """A text-pair classifier: `backbone` with a head on `[CLS]`, compiled; fine-tune it with `tfptm.finetune`.

    Args:
        backbone: a text backbone taking KerasHub's dict (`token_ids`,
            `padding_mask` and, for BERT-style models, `segment_ids`), e.g.
            from `tfptm.backbones.presets.load_preset` or `transformer_encoder`.
        num_classes: classes of the pair labels (2 for yes/no tasks).
        head: a `tfptm.Head` to use instead of the default
            `Head("multiclass", num_classes, pooling="first", dropout=0.1)`.
        optimizer, learning_rate, name: as in `tfptm.build_model`.

    Every `tfptm.training` strategy applies (`full`, `feature_extraction`,
    `two_stage`, `gradual_unfreezing`, `enable_lora`...): the model is a
    `build_model` model.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=20, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> model = pair_classifier(backbone, num_classes=3)
    >>> sorted(model.input), model.output.shape
    (['padding_mask', 'segment_ids', 'token_ids'], (None, 3))
    """
    if not isinstance(backbone, keras.Model) or not isinstance(backbone.input, dict) or not {
            "token_ids", "padding_mask"} <= set(backbone.input):  # fmt: skip
        got = sorted(backbone.input) if isinstance(getattr(backbone, "input", None), dict) else type(backbone).__name__
        raise TfptmError(f"pair_classifier: backbone takes {got}; expected a Transformer encoder taking "
                         "token_ids, padding_mask (and segment_ids), e.g. from load_preset or transformer_encoder")
    head = head or Head("multiclass", num_classes=num_classes, pooling="first", dropout=0.1)
    if not isinstance(head, Head):
        raise TfptmError(f"pair_classifier: head is {type(head).__name__}; expected a tfptm.Head")
    return build_model(backbone, head, optimizer=optimizer, learning_rate=learning_rate, name=name)


def __getattr__(name):  # names that moved away keep working for one release (tfptm/_moved.py)
    from tfptm._moved import module_getattr

    return module_getattr(__name__, name)
