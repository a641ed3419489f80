"""Sentence embeddings: raw strings to fixed-size vectors, contrastive fine-tuning, retrieval metrics, export.

An embedder is a plain functional `keras.Model`: a text backbone's token
inputs (`token_ids`, `padding_mask`, ...) -> per-token features -> pooling
as the checkpoint was trained (`"mean"` over the real tokens, padding left
out, for sentence-transformers checkpoints such as all-MiniLM-L6-v2; or
`"cls"`, the first token) -> optional L2 normalisation -> one output
`embeddings` of shape `(batch, dim)`, in float32.

The pieces:

- `build_embedder(backbone)` and `load_embedder(handle)` (a preset
  directory, `hf://` handle, KerasHub preset or registered backbone name;
  pooling, normalisation and length read from a sentence-transformers
  checkpoint's own files) build it; `embed(model, texts, tokenizer)` turns a
  list of strings into a NumPy array, shortest texts batched together.
- `MultipleNegativesRankingLoss` (in-batch negatives, optional hard
  negatives) and `ContrastiveModel` (the embedder applied to each column of a
  batch from `tfptm.data.contrastive.contrastive_batches`) train it with a
  plain `model.fit`; `fine_tune` does all of that with sentence-transformers'
  defaults.
- `retrieval_metrics` (recall@k, MRR) scores queries against a corpus.
- `tfptm.export.tasks.export_embedder` writes a SavedModel whose `embed` signature takes raw
  strings (the tokenizer runs in the graph) and TFLite files on token ids,
  each checked against the Keras model.

Example (a tiny random encoder; a real one comes from `load_embedder`):
>>> import numpy as np, tfptm
>>> from tfptm.data.text import tokenizer_layer
>>> model = build_embedder(tfptm.backbones.get("token_embeddings", vocabulary_size=8, embedding_dim=4))
>>> tokenizer = tokenizer_layer(["", "[UNK]", "red", "green", "apple", "pear"], 8, kind="words")
>>> vectors = embed(model, ["red apple", "green pear", "red pear"], tokenizer)
>>> vectors.shape, np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
((3, 4), True)
"""

import json
import os
from pathlib import Path

import keras
import numpy as np

from tfptm.data.contrastive import contrastive_batches
from tfptm.data.sequences import check_texts, token_ids_function, tokenize_all
from tfptm.data.text import TextTokenizer
from tfptm.errors import TfptmError
from tfptm.heads import pool

POOLINGS = ("mean", "cls")
OUTPUT = "embeddings"
DEFAULT_MAX_LENGTH = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2 and most of its checkpoints


# ----------------------------------------------------------------------------------------------- the model


def build_embedder(backbone, pooling="mean", normalize=True, name="embedder"):
    """A sentence-embedding `keras.Model`: token inputs -> `backbone` -> pooling -> optional L2 normalisation.

    Args:
        backbone: a text backbone taking a dict with `token_ids` and
            `padding_mask` (KerasHub's inputs; `tfptm.backbones.get`,
            `tfptm.backbones.presets.load_preset`) and returning features
            `(batch, steps, dim)`.
        pooling: `"mean"`, the average of the real tokens' features (padding
            is left out, so a text's vector does not depend on how far its
            batch was padded), or `"cls"`, the first token's.
        normalize: divide each vector by its L2 norm (`keras.layers.UnitNormalization`),
            so that dot products are cosine similarities.

    The output layer is named `embeddings` and computes in float32.

    Example:
    >>> import numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=20, num_layers=1, hidden_dim=8,
    ...                                intermediate_dim=8, max_sequence_length=8)
    >>> model = build_embedder(backbone)
    >>> ids = np.array([[2, 5, 7, 0, 0]])
    >>> vectors = model.predict({"token_ids": ids, "padding_mask": ids > 0, "segment_ids": 0 * ids}, verbose=0)
    >>> vectors.shape, round(float(np.linalg.norm(vectors)), 4)
    ((1, 8), 1.0)
    """
    if not isinstance(backbone, keras.Model):
        raise TfptmError(f"build_embedder: backbone must be a keras.Model; got {type(backbone).__name__}")
    if pooling not in POOLINGS:
        raise TfptmError(f"build_embedder: unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
    if not isinstance(backbone.input, dict) or not {"token_ids", "padding_mask"} <= set(backbone.input):
        got = sorted(backbone.input) if isinstance(backbone.input, dict) else "one tensor"
        raise TfptmError(f"build_embedder: backbone {backbone.name!r} takes {got}; expected a text backbone taking a "
                         "dict with token_ids and padding_mask (e.g. transformer_encoder or a BERT preset)")
    if len(backbone.outputs) != 1 or len(backbone.outputs[0].shape) != 3:
        shapes = ", ".join(str(tuple(o.shape)) for o in backbone.outputs)
        raise TfptmError(f"build_embedder: backbone {backbone.name!r} outputs {shapes}; expected one sequence "
                         "output (batch, steps, dim), e.g. load_preset(..., output='sequence_output')")
    inputs = {key: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=key) for key, t in sorted(backbone.input.items())}
    features = backbone(inputs)
    pooled = pool(features, "avg" if pooling == "mean" else "first", prefix="embedding",
                  padding_mask=inputs["padding_mask"])
    if normalize:
        vectors = keras.layers.UnitNormalization(axis=-1, name=OUTPUT, dtype="float32")(pooled)
    else:
        vectors = keras.layers.Activation("linear", name=OUTPUT, dtype="float32")(pooled)
    return keras.Model(inputs, vectors, name=name)


def load_embedder(handle, pooling=None, normalize=None, max_length=None, **backbone_kwargs):
    """`(model, tokenizer)`: an embedder built on a pre-trained checkpoint, with the tokenizer it was trained with.

    Args:
        handle: a preset directory (KerasHub or Hugging Face format), an
            `hf://` or `kaggle://` handle or KerasHub preset name (as
            `tfptm.backbones.presets.load_preset` takes), or the name of a
            registered text backbone such as `"transformer_encoder"` (random
            weights, no tokenizer: `tokenizer` is then `None`).
        pooling, normalize, max_length: `None` reads them from a
            sentence-transformers checkpoint's own files (`1_Pooling/config.json`,
            the `Normalize` module in `modules.json`, `max_seq_length` in
            `sentence_bert_config.json`): for all-MiniLM-L6-v2, mean pooling,
            L2 normalisation and 256 tokens. Without those files: `"mean"`,
            `True` and 256.
        **backbone_kwargs: passed to the backbone loader.

    Example:
    >>> model, tokenizer = load_embedder("transformer_encoder", vocabulary_size=20, num_layers=1, hidden_dim=8,
    ...                                  intermediate_dim=8, max_sequence_length=8)
    >>> model.output.shape, tokenizer is None
    ((None, 8), True)
    """
    from tfptm.backbones import get
    from tfptm.backbones.presets import _matches, load_preset, local_preset_dir

    handle = os.fspath(handle)
    settings = {}
    if _matches(handle):
        directory = local_preset_dir(handle)
        settings = sentence_transformers_settings(directory) if os.path.isdir(directory) else {}
        length = max_length or settings.get("max_length") or DEFAULT_MAX_LENGTH
        backbone, tokenizer = load_preset(handle, sequence_length=length, **backbone_kwargs)
    else:
        backbone, tokenizer = get(handle, **backbone_kwargs), None
    pooling = pooling or settings.get("pooling", "mean")
    normalize = settings.get("normalize", True) if normalize is None else normalize
    return build_embedder(backbone, pooling=pooling, normalize=normalize), tokenizer


def sentence_transformers_settings(directory):
    """How a sentence-transformers checkpoint in `directory` pools, normalises and truncates, from its own files.

    Returns a dict with any of `pooling` (`"mean"` or `"cls"`), `normalize`
    and `max_length`; `{}` for a directory without those files. A pooling
    mode tfptm does not build (max, mean-sqrt-len, weighted) is one `TfptmError`.

    Example:
    >>> import tempfile
    >>> sentence_transformers_settings(tempfile.mkdtemp())
    {}
    """
    directory = Path(directory)
    settings = {}
    pooling = _read_json(directory / "1_Pooling" / "config.json")
    if pooling:
        modes = [key[len("pooling_mode_"):] for key, on in pooling.items() if key.startswith("pooling_mode_") and on]
        known = {"mean_tokens": "mean", "cls_token": "cls"}
        if len(modes) != 1 or modes[0] not in known:
            raise TfptmError(f"{str(directory / '1_Pooling' / 'config.json')!r}: pooling modes {modes}; tfptm builds "
                             "exactly one of mean_tokens, cls_token")
        settings["pooling"] = known[modes[0]]
    modules = _read_json(directory / "modules.json")
    if modules:
        settings["normalize"] = any(str(m.get("type", "")).endswith(".Normalize") for m in modules)
    config = _read_json(directory / "sentence_bert_config.json")
    if config and config.get("max_seq_length"):
        settings["max_length"] = int(config["max_seq_length"])
    return settings


def _read_json(path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise TfptmError(f"{str(path)!r} is not valid JSON") from None


def is_embedder(model):
    """Whether `model` is an embedder from `build_embedder` (its output layer is `embeddings`).

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    >>> is_embedder(tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2)))
    False
    """
    return isinstance(model, keras.Model) and model.layers[-1].name == OUTPUT and len(model.outputs) == 1


def describe(model):
    """`{"dimension", "pooling", "normalized"}` of an embedder, read from its layers (for export metadata).

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=20, num_layers=1, hidden_dim=8,
    ...                                intermediate_dim=8, max_sequence_length=8)
    >>> describe(build_embedder(backbone, pooling="cls", normalize=False))
    {'dimension': 8, 'pooling': 'cls', 'normalized': False}
    """
    if not is_embedder(model):
        raise TfptmError(f"Model {getattr(model, 'name', model)!r} is not an embedder; build it with "
                         "tfptm.tasks.embeddings.build_embedder (its output layer is named 'embeddings')")
    names = {layer.name for layer in model.layers}
    return {"dimension": int(model.outputs[0].shape[-1]),
            "pooling": "mean" if "embedding_avg_pool" in names else "cls",
            "normalized": isinstance(model.layers[-1], keras.layers.UnitNormalization)}


# ------------------------------------------------------------------------------------------- embedding texts


def embed(model, texts, tokenizer, max_length=None, batch_size=64):
    """Embeds a list of strings: a float32 array `(len(texts), dim)`, row i for text i.

    Texts are tokenized once, batched shortest first with each batch padded
    only to its longest text (the masked pooling makes the vectors the same
    as with any padding), and put back in their order.

    Args:
        model: an embedder (`build_embedder`, `load_embedder`).
        tokenizer: what `load_embedder` returned (a KerasHub preprocessor or
            tokenizer), or a `tfptm.data.text.TextTokenizer`.
        max_length: the most tokens per text, `[CLS]`/`[SEP]` included;
            `None` takes the tokenizer's sequence length (256 for
            all-MiniLM-L6-v2, as sentence-transformers truncates).

    Example:
    >>> import tfptm
    >>> from tfptm.data.text import tokenizer_layer
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=8, num_layers=1, hidden_dim=8,
    ...                                intermediate_dim=8, max_sequence_length=8)
    >>> tokenizer = tokenizer_layer(["", "[UNK]", "red", "apple"], 8, kind="words")
    >>> embed(build_embedder(backbone), ["red apple", "apple"], tokenizer).shape
    (2, 8)
    """
    describe(model)
    texts = check_texts(texts, "embed: texts")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise TfptmError(f"embed: batch_size must be a positive integer; got {batch_size!r}")
    tokenize, pad_id = token_ids_function(tokenizer, max_length or sequence_length(tokenizer))
    flat, starts, lengths = tokenize_all(texts, tokenize)
    names = sorted(model.input)
    order = np.argsort(lengths, kind="stable")
    vectors = np.zeros((len(texts), model.outputs[0].shape[-1]), "float32")
    for first in range(0, len(order), batch_size):
        rows = order[first: first + batch_size]
        inputs = padded_inputs(flat, starts[rows], lengths[rows], pad_id, names)
        vectors[rows] = keras.ops.convert_to_numpy(model(inputs, training=False))
    return vectors


def padded_inputs(flat, starts, lengths, pad_id, names):
    """The model's input dict for token sequences `flat[start: start + length]`, padded to the longest.

    Example:
    >>> x = padded_inputs(np.array([5, 6, 7]), np.array([0, 2]), np.array([2, 1]), 0, ["padding_mask", "token_ids"])
    >>> x["token_ids"].tolist(), x["padding_mask"].tolist()
    ([[5, 6], [7, 0]], [[True, True], [True, False]])
    """
    longest = max(1, int(np.max(lengths))) if len(lengths) else 1
    ids = np.full((len(starts), longest), pad_id, "int32")
    for row, (start, length) in enumerate(zip(starts, lengths)):
        ids[row, :length] = flat[start: start + length]
    mask = np.arange(longest)[None, :] < np.asarray(lengths)[:, None]
    every = {"token_ids": ids, "padding_mask": mask, "segment_ids": np.zeros_like(ids)}
    return {name: every[name] for name in names}


def sequence_length(tokenizer, default=DEFAULT_MAX_LENGTH):
    """The tokenizer's own sequence length (a KerasHub preprocessor's, a `TextTokenizer`'s), else `default`."""
    length = getattr(tokenizer, "sequence_length", None)
    return int(length) if isinstance(length, (int, np.integer)) and length > 0 else default


# ----------------------------------------------------------------------------------------- contrastive training


@keras.saving.register_keras_serializable(package="tfptm")
class MultipleNegativesRankingLoss(keras.losses.Loss):
    """The multiple-negatives ranking loss (in-batch negatives) of sentence-transformers.

    `y_pred` is `(batch, 2 + k, dim)`: for each example its anchor, its
    positive and `k` hard negatives (0 or more), as `ContrastiveModel`
    outputs them. Every anchor is scored against every positive and hard
    negative of the batch by cosine similarity times `scale`; the loss is the
    cross-entropy of picking its own positive, so the other examples'
    positives serve as negatives for free. `y_true` is ignored (anchor i's
    positive is candidate i by construction). The default scale, 20, is
    sentence-transformers' (a softmax temperature of 0.05).

    Example:
    >>> loss = MultipleNegativesRankingLoss()
    >>> anchors_positives = np.array([[[1.0, 0.0], [1.0, 0.1]], [[0.0, 1.0], [0.1, 1.0]]])
    >>> round(float(loss(None, anchors_positives)), 6)
    0.0
    """

    def __init__(self, scale=20.0, name="multiple_negatives_ranking_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
            raise TfptmError(f"MultipleNegativesRankingLoss: scale must be a positive number; got {scale!r}")
        self.scale = float(scale)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if y_true is None:  # no labels are needed: accept none
            y_true = keras.ops.zeros(keras.ops.shape(y_pred)[:1], "int32")
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        y_pred = keras.ops.cast(y_pred, "float32")
        vectors = y_pred / keras.ops.maximum(keras.ops.norm(y_pred, axis=-1, keepdims=True), 1e-12)
        anchors = vectors[:, 0, :]
        # positives first, then each column of hard negatives: anchor i's positive is candidate i
        candidates = keras.ops.reshape(keras.ops.transpose(vectors[:, 1:, :], (1, 0, 2)), (-1, keras.ops.shape(y_pred)[-1]))
        scores = self.scale * keras.ops.matmul(anchors, keras.ops.transpose(candidates))
        labels = keras.ops.arange(keras.ops.shape(anchors)[0])
        return keras.losses.sparse_categorical_crossentropy(labels, scores, from_logits=True)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="tfptm")
class ContrastiveModel(keras.Model):
    """Trains an embedder with `model.fit` on batches of `{"anchor", "positive"[, "negative"]}` token inputs.

    The same `encoder` (one set of weights) embeds each column; the output
    stacks them as `(batch, 2 or 3, dim)`, what `MultipleNegativesRankingLoss`
    takes. Batches come from `tfptm.data.contrastive.contrastive_batches` and
    need no labels. Train, then use or save `encoder` itself.

    Example:
    >>> import tfptm
    >>> from tfptm.data.contrastive import contrastive_batches
    >>> from tfptm.data.text import tokenizer_layer
    >>> trainer = ContrastiveModel(build_embedder(tfptm.backbones.get("token_embeddings", vocabulary_size=8, embedding_dim=4)))
    >>> trainer.compile(optimizer="adam", loss=MultipleNegativesRankingLoss())
    >>> tokenizer = tokenizer_layer(["", "[UNK]", "red", "green", "apple", "pear"], 8, kind="words")
    >>> pairs = contrastive_batches(["red apple", "green pear"], ["apple", "pear"], tokenizer=tokenizer, batch_size=2)
    >>> trainer.predict(pairs, verbose=0).shape  # (pairs, anchor and positive, dim); trainer.fit(pairs) trains
    (2, 2, 4)
    """

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder

    def call(self, inputs, training=False):
        missing = [key for key in ("anchor", "positive") if key not in inputs]
        if missing:
            raise TfptmError(f"ContrastiveModel: batch has {sorted(inputs)}; expected anchor, positive and "
                             "optionally negative (see tfptm.data.contrastive.contrastive_batches)")
        columns = [key for key in ("anchor", "positive", "negative") if key in inputs]
        return keras.ops.stack([self.encoder(inputs[key], training=training) for key in columns], axis=1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is None:  # contrastive batches carry no labels; the loss knows where each positive is
            y = keras.ops.zeros(keras.ops.shape(y_pred)[:1], "int32")
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        return cls(encoder, **config)


def fine_tune(model, anchors, positives, tokenizer, negatives=None, epochs=1, batch_size=32, learning_rate=2e-5,
              max_length=128, scale=20.0, warmup_fraction=0.1, weight_decay=0.01, validation=None, seed=None,
              callbacks=None, verbose="auto"):  # fmt: skip
    """Fine-tunes an embedder contrastively on `(anchor, positive[, negative])` texts; returns the Keras `History`.

    `model`'s weights are trained in place. The defaults are
    sentence-transformers': multiple-negatives ranking loss with scale 20,
    AdamW at 2e-5 with weight decay 0.01 (none on biases and LayerNorm),
    linear warmup over the first 10% of steps, then (Keras's `CosineDecay`)
    a cosine decay to 0. Larger `batch_size` gives each anchor more negatives.

    Args:
        anchors, positives: lists of strings; `positives[i]` belongs with `anchors[i]`.
        tokenizer: the model's tokenizer (what `load_embedder` returned).
        negatives: `None`, or one hard negative per anchor.
        max_length: the most tokens per text while training.
        validation: `None` or `(anchors, positives[, negatives])` held out:
            `fit` reports their loss as `val_loss`.
        seed: makes the shuffling repeatable.
        callbacks, verbose: as in `keras.Model.fit`.

    Example:
    >>> import tfptm
    >>> from tfptm.data.text import tokenizer_layer
    >>> model = build_embedder(tfptm.backbones.get("token_embeddings", vocabulary_size=8, embedding_dim=4))
    >>> tokenizer = tokenizer_layer(["", "[UNK]", "red", "green", "apple", "pear"], 8, kind="words")
    >>> history = fine_tune(model, ["red apple", "green pear"], ["apple", "pear"], tokenizer, batch_size=2, verbose=0)
    >>> sorted(history.history)
    ['loss']
    """
    describe(model)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TfptmError(f"fine_tune: {name} must be a positive integer; got {value!r}")
    if not 0 <= warmup_fraction < 1:
        raise TfptmError(f"fine_tune: warmup_fraction is {warmup_fraction}; expected 0 <= warmup_fraction < 1")
    batching = dict(tokenizer=tokenizer, max_length=max_length, batch_size=batch_size, outputs=sorted(model.input))
    train = contrastive_batches(anchors, positives, negatives, shuffle=True, seed=seed, **batching)
    validation_data = None
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 3):
            raise TfptmError("fine_tune: validation must be (anchors, positives) or (anchors, positives, negatives)")
        validation_data = contrastive_batches(*validation, shuffle=False, **batching)
    total = epochs * int(train.cardinality())
    warmup = int(round(warmup_fraction * total))
    rate = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else learning_rate, decay_steps=max(1, total - warmup), alpha=0.0,
        warmup_target=learning_rate if warmup else None, warmup_steps=warmup,
    )
    optimizer = keras.optimizers.AdamW(learning_rate=rate, weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    trainer = ContrastiveModel(model, name=f"{model.name}_contrastive")
    trainer.compile(optimizer=optimizer, loss=MultipleNegativesRankingLoss(scale))
    return trainer.fit(train, epochs=epochs, validation_data=validation_data, callbacks=callbacks, verbose=verbose,
                       shuffle=False)  # contrastive_batches reshuffles every epoch


# ------------------------------------------------------------------------------------------ retrieval metrics


def retrieval_metrics(query_vectors, corpus_vectors, relevant, ks=(1, 10)):
    """Recall@k and MRR of ranking `corpus_vectors` by cosine similarity to each of `query_vectors`.

    Args:
        query_vectors: `(queries, dim)`; corpus_vectors: `(documents, dim)`.
        relevant: per query, the corpus index of its one relevant document
            (an int array), or a list of sets of indices (several relevant).
        ks: the cut-offs of recall@k.

    Recall@k is, per query, the share of its relevant documents among the k
    most similar, averaged over queries (sentence-transformers'
    `InformationRetrievalEvaluator` definition). MRR is the mean of 1 / the
    rank of the first relevant document, over the whole ranking (no cut-off).
    Ties rank in corpus order.

    Example:
    >>> queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> corpus = np.array([[1.0, 0.1], [0.9, 0.5], [0.1, 1.0]])
    >>> retrieval_metrics(queries, corpus, [1, 2], ks=(1, 2))
    {'recall@1': 0.5, 'recall@2': 1.0, 'mrr': 0.75, 'queries': 2, 'documents': 3}
    """
    ranks, relevant = _ranks(query_vectors, corpus_vectors, relevant)
    metrics = {}
    for k in ks:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise TfptmError(f"retrieval_metrics: ks must be positive integers; got {k!r}")
        metrics[f"recall@{int(k)}"] = float(np.mean([np.mean(r <= k) for r in ranks]))
    metrics["mrr"] = float(np.mean([1.0 / r.min() for r in ranks]))
    metrics["queries"], metrics["documents"] = len(ranks), int(np.shape(corpus_vectors)[0])
    return metrics


def recall_at_k(query_vectors, corpus_vectors, relevant, k=10):
    """The recall@k of `retrieval_metrics` alone.

    Example:
    >>> recall_at_k(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0]]), [0], k=1)
    0.0
    """
    return retrieval_metrics(query_vectors, corpus_vectors, relevant, ks=(k,))[f"recall@{k}"]


def mean_reciprocal_rank(query_vectors, corpus_vectors, relevant):
    """The MRR of `retrieval_metrics` alone.

    Example:
    >>> mean_reciprocal_rank(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]), [1])
    0.5
    """
    return retrieval_metrics(query_vectors, corpus_vectors, relevant, ks=())["mrr"]


def _ranks(query_vectors, corpus_vectors, relevant):
    """Per query, the 1-based ranks of its relevant documents, as an int array."""
    queries = _unit_rows(query_vectors, "query_vectors")
    corpus = _unit_rows(corpus_vectors, "corpus_vectors")
    if queries.shape[1] != corpus.shape[1]:
        raise TfptmError(f"retrieval_metrics: query vectors of dimension {queries.shape[1]}, corpus vectors of "
                         f"{corpus.shape[1]}; expected the same")
    if isinstance(relevant, np.ndarray) and relevant.ndim == 1 or (
            isinstance(relevant, (list, tuple)) and all(isinstance(r, (int, np.integer)) for r in relevant)):
        relevant = [{int(r)} for r in relevant]
    relevant = [set(int(i) for i in r) for r in relevant]
    if len(relevant) != len(queries):
        raise TfptmError(f"retrieval_metrics: {len(relevant)} relevance entries for {len(queries)} queries; "
                         "expected one per query")
    bad = next((i for i, r in enumerate(relevant) if not r or not all(0 <= d < len(corpus) for d in r)), None)
    if bad is not None:
        raise TfptmError(f"retrieval_metrics: query {bad} has relevant documents {sorted(relevant[bad])}; expected "
                         f"at least one index in 0..{len(corpus) - 1}")
    scores = queries @ corpus.T
    order = np.argsort(-scores, axis=1, kind="stable")
    position = np.empty_like(order)
    position[np.arange(len(order))[:, None], order] = np.arange(1, order.shape[1] + 1)[None, :]
    return [position[q, sorted(r)] for q, r in enumerate(relevant)], relevant


def _unit_rows(vectors, where):
    array = np.asarray(vectors, dtype="float64")
    if array.ndim != 2 or not len(array) or not np.isfinite(array).all():
        raise TfptmError(f"retrieval_metrics: {where} has shape {array.shape}; expected a non-empty finite (rows, dim) array")
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


# ------------------------------------------------------------------------------------------------- export


def serving_tokenizer(tokenizer, model):
    """`tokenizer` as something mapping a string tensor to the model's whole input dict, inside a graph.

    A KerasHub preprocessor does that already; a `TextTokenizer` is copied to
    output the model's inputs. A bare KerasHub tokenizer (no `[CLS]`/`[SEP]`,
    no padding) is refused: serve with its preprocessor.
    """
    names = sorted(model.input)
    if isinstance(tokenizer, TextTokenizer):
        return TextTokenizer.from_config({**tokenizer.get_config(), "outputs": names})
    if hasattr(tokenizer, "tokenizer") and callable(tokenizer):
        return tokenizer
    raise TfptmError(f"export_embedder: tokenizer is {type(tokenizer).__name__}; expected a KerasHub preprocessor "
                     "(what load_embedder returns) or a tfptm.data.text.TextTokenizer")


def check_texts_arg(texts):
    """The check texts of `tfptm.export.tasks.export_embedder`, checked."""
    return check_texts(texts, "export_embedder: check_texts")


def tokenized_inputs(model, texts, tokenizer, max_length=None):
    """All `texts` as one input dict for `model`, padded to the longest: for TFLite checks and int8 calibration.

    Example:
    >>> from tfptm.data.text import tokenizer_layer
    >>> import tfptm
    >>> model = build_embedder(tfptm.backbones.get("token_embeddings", vocabulary_size=8, embedding_dim=4))
    >>> tokenizer = tokenizer_layer(["", "[UNK]", "red", "apple"], 8, kind="words")
    >>> tokenized_inputs(model, ["red apple", "apple"], tokenizer)["token_ids"].tolist()
    [[2, 3], [3, 0]]
    """
    tokenize, pad_id = token_ids_function(tokenizer, max_length or sequence_length(tokenizer))
    flat, starts, lengths = tokenize_all(check_texts(texts, "tokenized_inputs: texts"), tokenize)
    return padded_inputs(flat, starts, lengths, pad_id, sorted(model.input))


def vocabulary_of(tokenizer):
    """The tokenizer's vocabulary (line number = token id), or `None` when it has none to give."""
    inner = getattr(tokenizer, "tokenizer", tokenizer)
    if isinstance(inner, TextTokenizer):
        return list(inner.vocabulary)
    if callable(getattr(inner, "get_vocabulary", None)):
        return [str(token) for token in inner.get_vocabulary()]
    return None


def special_ids(tokenizer):
    """The class, separator and padding token ids and the casing of a tokenizer, for on-device tokenization."""
    inner = getattr(tokenizer, "tokenizer", tokenizer)
    ids = {}
    for key, names in (("cls_token_id", ("cls_token_id", "start_token_id")), ("sep_token_id", ("sep_token_id", "end_token_id")),
                       ("pad_token_id", ("pad_token_id",))):
        for name in names:
            value = getattr(inner, name, None)
            if isinstance(value, (int, np.integer)):
                ids[key] = int(value)
                break
    ids.setdefault("pad_token_id", 0)
    ids["lowercase"] = bool(getattr(inner, "lowercase", False))
    return ids


def __getattr__(name):  # names that moved away keep working for one release (tfptm/_moved.py)
    from tfptm._moved import module_getattr

    return module_getattr(__name__, name)
