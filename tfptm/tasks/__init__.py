"""Task kinds beyond single-text and image classification (floor 2).

One module per task kind, each holding what keras-hub keeps with a task: its
model builder or head, its loss and metric defaults, and its serving function.
Single-input classification and regression heads are `tfptm.Head`
(`tfptm/heads.py`).

Token-level tasks (`tokens`: a tag per word; `spans`: extractive question
answering) output per-token tensors; each module names its output layer
(`OUTPUT`) and owns its serving archive (`serving_archive`) and its export
parity (`compare_outputs`), which `tfptm.export.export_checked` calls through
`token_task`.
"""

import importlib

#: the modules of the token-level tasks, by task name (each has TASK, OUTPUT, serving_archive, compare_outputs)
TOKEN_TASK_MODULES = {"token_classification": "tfptm.tasks.tokens", "question_answering": "tfptm.tasks.spans"}


def token_task(model):
    """The task module (`tfptm.tasks.tokens` or `tfptm.tasks.spans`) whose head `model` ends with, else `None`.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=20, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> token_task(tfptm.tasks.tokens.token_classifier(backbone, num_tags=3)).TASK
    'token_classification'
    """
    name = model.layers[-1].name
    for module_name in TOKEN_TASK_MODULES.values():
        module = importlib.import_module(module_name)
        if module.OUTPUT == name:
            return module
    return None

from tfptm.tasks import tokens  # noqa: E402  (token classification, issue 18)
from tfptm.tasks.pairs import PairTokenizer, pair_classifier, pair_tokenizer

from tfptm.tasks.embeddings import (  # sentence embeddings (issue 17, part 3)
    ContrastiveModel,
    MultipleNegativesRankingLoss,
    build_embedder,
    embed,
    fine_tune,
    load_embedder,
    retrieval_metrics,
)


def __getattr__(name):  # names that moved away keep working for one release (tfptm/_moved.py)
    from tfptm._moved import module_getattr

    return module_getattr(__name__, name)
