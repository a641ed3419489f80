"""Task kinds beyond single-text and image classification (floor 2).

One module per task kind, each holding what keras-hub keeps with a task: its
model builder or head, its loss and metric defaults, and its serving function.
Single-input classification and regression heads are `tfptm.Head`
(`tfptm/heads.py`).
"""

from tfptm.tasks.pairs import PairTokenizer, check_pair_signature, export_pairs, pair_classifier, pair_tokenizer

from tfptm.tasks.embeddings import (  # sentence embeddings (issue 17, part 3)
    ContrastiveModel,
    MultipleNegativesRankingLoss,
    build_embedder,
    embed,
    export_embedder,
    fine_tune,
    load_embedder,
    retrieval_metrics,
)
