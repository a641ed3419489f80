"""Tutorial 4: pre-train a small BERT by masked language modelling, then fine-tune it. Two steps, two calls.

Masked language modelling (MLM) needs no labels: hide 15% of the tokens and
train the encoder to guess them from context. Of the hidden tokens, 80%
become [MASK], 10% a random token and 10% stay unchanged, so the model cannot
learn that only [MASK] positions matter; the loss counts the hidden positions
only, and the masks are drawn afresh every epoch (dynamic masking).

Step 1 learns a WordPiece vocabulary from the unlabelled corpus, pre-trains
and saves an artifact directory (backbone + vocabulary). Step 2 loads that
directory by path, as any user would, and fine-tunes on a few labels.

The data is `tfptm.datasets.load_reviews`, generated offline: this tutorial shows
the mechanics and the artifact round trip. Whether MLM pays off on a given
budget is measured, with real text, in bench/pretrain_mlm_labels.py.

Run: python tutorials/04_mlm_pretraining_then_finetuning.py   (TFPTM_TUTORIAL_FAST=1 for a smoke run)
"""

import os
import tempfile

import tensorflow as tf

import tfptm

FAST = os.environ.get("TFPTM_TUTORIAL_FAST") == "1"
work = tempfile.mkdtemp()

# Step 1: unlabelled same-domain text -> a pre-trained artifact.
unlabelled = [*tfptm.datasets.load_reviews("train", 600, seed=10)[0], *tfptm.datasets.load_reviews("test", 600, seed=11)[0]]
pretrained = tfptm.pretrain.masked_lm(
    unlabelled, vocabulary_size=200, sequence_length=16, epochs=1 if FAST else 8, batch_size=32,
    learning_rate=1e-3, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128,
)
print("masked-token accuracy on held-out text:", pretrained.metrics)
artifact = tfptm.pretrain.save_pretrained(os.path.join(work, "reviews_mlm"), pretrained)

# Step 2: load by path, put a head on, fine-tune on a few labels.
backbone, tokenizer = tfptm.backbones.saved.load_artifact(artifact)
texts, labels = tfptm.datasets.load_reviews("train", 32, seed=0)
test_texts, test_labels = tfptm.datasets.load_reviews("test", 128, seed=1)


def tokenize(strings):
    return {name: value.numpy() for name, value in tokenizer(tf.constant(strings)).items()}


model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="avg"))
train = tfptm.data.from_arrays(tokenize(texts), labels, batch_size=16, seed=0)
tfptm.finetune(model, train, tfptm.training.two_stage(head_epochs=2 if FAST else 20, finetune_epochs=2 if FAST else 20,
                                                      finetune_learning_rate=3e-4), verbose=0)
x_test = tokenize(test_texts)
report = tfptm.evaluate(model, x_test, test_labels, class_names=["negative", "positive"])
print(f"accuracy on {report['num_examples']} held-out reviews: {report['accuracy']:.3f}")

# The export tokenizes raw strings inside the graph, exactly as pre-training did.
version_dir = tfptm.export.saved_model(model, os.path.join(work, "export"), "reviews_mlm",
                                       class_names=["negative", "positive"], tokenizer=tokenizer)
print("SavedModel parity:", tfptm.export.check_saved_model(version_dir, model, x_test))
print(tfptm.export.predict(version_dir, ["such a splendid novel overall"], top_k=1))
