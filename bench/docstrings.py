"""A REAL text classification task found on any machine with the scientific Python stack installed.

Which library (NumPy, scikit-learn, Matplotlib, Keras) a docstring summary
(its first paragraph) comes from, read from the installed sources with
`ast`. The unlabelled corpus is the other paragraphs of the docstrings plus
the training summaries without labels (and, if asked, docstrings of more
libraries); nothing of a validation or test docstring is in it. Used by
`pretrain_mlm_labels.py` and `distill_text.py`.
"""

import importlib.metadata

import numpy as np

from tfptm.datasets.docstrings import docstrings as _docstrings, paragraphs

LIBRARIES = {"numpy": "numpy", "scikit-learn": "sklearn", "matplotlib": "matplotlib", "keras": "keras"}


def docstrings(module, limit):
    """Up to `limit` class and function docstrings of an installed module, in a fixed order (tests skipped)."""
    return _docstrings(module, limit, modules=False)


def docstrings_task(config, rng):
    """`(corpus, train, validation, test, info)`, each split `(texts, labels)`, from the libraries' docstrings."""
    by_library, versions = {}, {}
    for label, module in LIBRARIES.items():
        by_library[label] = [paragraphs(d) for d in docstrings(module, config["docstrings_per_library"])]
        versions[label] = importlib.metadata.version(label)
    # A summary seen in two libraries (or twice) says nothing about which one it came from.
    counts = {}
    for docs in by_library.values():
        for parts in docs:
            if parts:
                counts[parts[0].lower()] = counts.get(parts[0].lower(), 0) + 1
    corpus, splits = [], {"train": [], "validation": [], "test": []}
    sizes = {"test": config["test_per_class"], "validation": config["validation_per_class"],
             "train": config["train_per_class"]}
    for y, (label, docs) in enumerate(by_library.items()):
        usable = [i for i, parts in enumerate(docs) if parts and counts[parts[0].lower()] == 1]
        if len(usable) < sum(sizes.values()):
            raise SystemExit(f"{label}: only {len(usable)} usable docstrings; need {sum(sizes.values())}")
        chosen, start, held_out = rng.permutation(usable), 0, set()
        for split, size in sizes.items():
            ids = chosen[start: start + size].tolist()
            start += size
            splits[split] += [(docs[i][0], y) for i in ids]
            if split != "train":
                held_out.update(ids)
        corpus += [p for i, parts in enumerate(docs) if i not in held_out for p in parts]
    for module in config.get("extra_corpus_libraries", ()):  # more same-domain text, no labels
        corpus += [p for d in docstrings(module, config["docstrings_per_library"]) for p in paragraphs(d)]
    corpus = [corpus[i] for i in np.sort(rng.permutation(len(corpus))[: config["corpus_paragraphs"]])]
    arrays = {name: tuple(np.array(v) for v in zip(*pairs)) for name, pairs in splits.items()}
    info = {"description": "which library a docstring summary (first paragraph) documents; REAL text from installed packages",
            "classes": list(LIBRARIES), "library_versions": versions, "corpus_documents": len(corpus)}
    return corpus, arrays["train"], arrays["validation"], arrays["test"], info
