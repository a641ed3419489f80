"""A small offline text-classification task for examples, tests and benchmarks.

No real labelled text ships with the libraries tfptm depends on, and nothing
can be downloaded here, so this task is generated: short reviews whose
sentiment comes from one adjective. The `"train"` and `"test"` splits use
DISJOINT adjectives, nouns and templates, so a model can only score on the
test split by already knowing, from pre-training, that "superb" is like
"excellent" and "atrocious" like "awful". That makes it a fair probe of what
pre-trained weights add, and a poor measure of anything else: it is not a
benchmark of real-world sentiment accuracy.
"""

import numpy as np

from tfptm.errors import TfptmError

CLASS_NAMES = ("negative", "positive")

VOCABULARY = {
    "train": {
        "positive": ["good", "great", "excellent", "wonderful", "fantastic", "amazing", "lovely", "delightful"],
        "negative": ["bad", "terrible", "awful", "horrible", "dreadful", "poor", "disappointing", "boring"],
        "nouns": ["movie", "meal", "book", "hotel"],
        "templates": [
            "the {noun} was {adj}",
            "what a {adj} {noun}",
            "i thought the {noun} was really {adj}",
            "this {noun} is {adj}",
        ],
    },
    "test": {
        "positive": ["superb", "brilliant", "outstanding", "marvelous", "enjoyable", "pleasant", "splendid", "terrific"],
        "negative": ["lousy", "miserable", "dull", "mediocre", "unpleasant", "pathetic", "atrocious", "tedious"],
        "nouns": ["concert", "restaurant", "novel", "show"],
        "templates": [
            "honestly, the {noun} felt {adj}",
            "my friends said the {noun} is {adj}",
            "such a {adj} {noun} overall",
            "we found this {noun} {adj}",
        ],
    },
}


def load_reviews(split="train", count=64, seed=0):
    """Returns `(texts, labels)`: `count` generated reviews, labels 0 (negative) and 1 (positive), balanced.

    Example:
    >>> texts, labels = load_reviews("train", count=4, seed=0)
    >>> len(texts), labels.tolist()
    (4, [0, 1, 0, 1])
    """
    if split not in VOCABULARY:
        raise TfptmError(f"load_reviews: unknown split {split!r}; expected one of {', '.join(VOCABULARY)}")
    if not isinstance(count, int) or count < 1:
        raise TfptmError(f"load_reviews: count must be a positive integer; got {count!r}")
    spec = VOCABULARY[split]
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(count):
        label = i % 2
        adjective = rng.choice(spec["positive"] if label else spec["negative"])
        template = rng.choice(spec["templates"])
        texts.append(template.format(noun=rng.choice(spec["nouns"]), adj=adjective))
        labels.append(label)
    return np.array(texts), np.array(labels, dtype="int32")
