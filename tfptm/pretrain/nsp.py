"""Next-sentence prediction (BERT) or sentence-order prediction (ALBERT), alone or joint with masked LM.

Documents are cut into sentences (after `.`, `!` or `?` followed by
whitespace). Every two consecutive sentences `(a, b)` of a document give one
example, `[CLS] a [SEP] b [SEP]` (`tfptm.data.pairs`); half of them, drawn
with `seed`, become negatives:

- `negatives="other_document"` (NSP, BERT): `b` is replaced by a sentence of
  another document. The model learns whether two sentences belong together,
  which is mostly a topic question.
- `negatives="swapped"` (SOP, ALBERT): the pair is `(b, a)`. Both sentences
  come from the same place, so only their order tells: the harder, coherence
  question (ALBERT found it transfers better, and that NSP is nearly solved by
  topic alone).

Label 1 means "b follows a", 0 "it does not". The pairs are drawn once
(BERT's static data); with `masked_lm=True` their tokens are masked afresh
every epoch as in `tfptm.pretrain.masked_lm` (15%, 80/10/10; never `[CLS]`,
`[SEP]` or padding), and the loss is the sum of both objectives.

`continue_pretraining` does this (or masked LM alone) to an existing preset,
e.g. MiniLM on your domain's text, keeping its tokenizer and vocabulary.
"""

import dataclasses
import math
import re

import keras
import numpy as np
import tensorflow as tf

from tfptm.errors import TfptmError
from tfptm.pretrain import common
from tfptm.pretrain.common import Pretrained, documents_of, final_metrics, split_documents, token_embedding

NEGATIVES = ("other_document", "swapped")
OBJECTIVES = ("nsp", "sop", "nsp+mlm", "sop+mlm", "mlm")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclasses.dataclass(frozen=True)
class SentencePairs:
    """Sentence pairs for next-sentence (or order) prediction, with where each sentence came from.

    `labels[i]` is 1 when `texts_b[i]` follows `texts_a[i]` in its document,
    else 0. `source_a[i]` and `source_b[i]` are `(document, sentence)`
    indices into the documents given to `sentence_pairs`.
    """

    texts_a: list
    texts_b: list
    labels: np.ndarray
    source_a: np.ndarray
    source_b: np.ndarray

    def __len__(self):
        return len(self.texts_a)


def sentences(document):
    """A document's sentences: split after `.`, `!` or `?` followed by whitespace.

    Example:
    >>> sentences("It reads a file. Then it parses it!  Done? yes")
    ['It reads a file.', 'Then it parses it!', 'Done?', 'yes']
    """
    return [s for s in _SENTENCE_END.split(" ".join(str(document).split())) if s]


def sentence_pairs(documents, negatives="other_document", seed=0):
    """Consecutive sentence pairs of `documents`, half of them made negatives (see the module doc).

    Example:
    >>> pairs = sentence_pairs(["A cat sat. It slept. It woke.", "Rain fell. Roads flooded."], seed=0)
    >>> len(pairs), sorted(set(pairs.labels.tolist()))
    (3, [0, 1])
    >>> all(b == [a[0], a[1] + 1] for a, b, y in zip(pairs.source_a.tolist(), pairs.source_b.tolist(), pairs.labels) if y)
    True
    """
    if negatives not in NEGATIVES:
        raise TfptmError(f"sentence_pairs: negatives is {negatives!r}; expected one of {', '.join(NEGATIVES)}")
    split = [sentences(d) for d in documents]
    usable = [i for i, s in enumerate(split) if len(s) >= 2]
    if not usable:
        raise TfptmError("sentence_pairs: no document has two sentences (split after . ! or ?); "
                         "expected documents of several sentences")
    others = [i for i, s in enumerate(split) if s]
    if negatives == "other_document" and len(others) < 2:
        raise TfptmError("sentence_pairs: negatives='other_document' needs at least two documents with text")
    rng = np.random.default_rng(seed)
    rows = []
    for d in usable:
        for i in range(len(split[d]) - 1):
            a, b = (d, i), (d, i + 1)
            if rng.random() < 0.5:
                rows.append((a, b, 1))
            elif negatives == "swapped":
                rows.append((b, a, 0))
            else:
                other = d
                while other == d:
                    other = others[rng.integers(len(others))]
                rows.append((a, (other, int(rng.integers(len(split[other])))), 0))
    source_a = np.array([r[0] for r in rows], dtype="int64")
    source_b = np.array([r[1] for r in rows], dtype="int64")
    return SentencePairs([split[d][i] for d, i in source_a], [split[d][i] for d, i in source_b],
                         np.array([r[2] for r in rows], dtype="int32"), source_a, source_b)


def next_sentence_model(backbone, vocabulary_size=None, max_predictions=None, learning_rate=5e-4):
    """The backbone with an NSP head on `[CLS]` (tanh pooler, 2 logits) and, with `max_predictions`, a `MaskedLMHead`.

    Inputs: the backbone's dict, plus `mask_positions` `(batch, max_predictions)`
    with masked LM. Outputs: `{"nsp": (batch, 2)}` logits, plus
    `{"mlm": (batch, max_predictions, vocabulary_size)}`. Compiled with
    cross-entropy on each (masked LM weighted by the generator's `mask_weights`);
    the loss is their sum.

    Example:
    >>> import tfptm
    >>> backbone = tfptm.backbones.get("transformer_encoder", vocabulary_size=30, num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> sorted((k, v.shape) for k, v in next_sentence_model(backbone, 30, max_predictions=3).output.items())
    [('mlm', (None, 3, 30)), ('nsp', (None, 2))]
    """
    import keras_hub

    if not isinstance(backbone.input, dict):
        raise TfptmError("next_sentence: the backbone must take KerasHub's input dict (token_ids, padding_mask, segment_ids)")
    inputs = {name: keras.Input(shape=(None,), dtype=t.dtype, name=name) for name, t in backbone.input.items()}
    features = backbone(inputs)
    pooled = keras.layers.Dense(features.shape[-1], activation="tanh", name="nsp_pooler")(features[:, 0, :])
    outputs = {"nsp": keras.layers.Dense(2, name="nsp", dtype="float32")(pooled)}
    losses = {"nsp": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}
    metrics = {"nsp": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}
    all_inputs = dict(inputs)
    if max_predictions:
        embedding = token_embedding(backbone)
        if embedding is not None and embedding.input_dim < vocabulary_size:
            raise TfptmError(f"next_sentence: the backbone embeds {embedding.input_dim} tokens but the vocabulary has "
                             f"{vocabulary_size}; expected the tokenizer the backbone was trained with")
        all_inputs["mask_positions"] = keras.Input(shape=(max_predictions,), dtype="int32", name="mask_positions")
        head = keras_hub.layers.MaskedLMHead(vocabulary_size=None if embedding is not None else vocabulary_size,
                                             token_embedding=embedding, intermediate_activation="gelu",
                                             name="mlm_head", dtype="float32")
        outputs["mlm"] = keras.layers.Identity(name="mlm", dtype="float32")(
            head(features, mask_positions=all_inputs["mask_positions"]))
        losses["mlm"] = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        metrics["mlm"] = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    model = keras.Model(all_inputs, outputs, name="next_sentence")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses, weighted_metrics=metrics)
    return model


def next_sentence(corpus, backbone=None, tokenizer=None, masked_lm=True, negatives="other_document",
                  sequence_length=128, mask_rate=0.15, epochs=3, batch_size=32, learning_rate=5e-4,
                  warmup_fraction=0.1, validation_fraction=0.1, vocabulary_size=8000, lowercase=True, seed=0,
                  verbose=0, callbacks=None, **backbone_kwargs):  # fmt: skip
    """Pre-trains an encoder by next-sentence (or sentence-order) prediction, by default joint with masked LM.

    Args:
        corpus: a text file (one document per line), a folder of `.txt`
            files, a `tfptm.data.corpus.Corpus` or a list of strings; each
            document needs two or more sentences to give examples.
        backbone: an encoder on KerasHub's dict; `None` builds
            `transformer_encoder` sized by `backbone_kwargs` for a wordpiece
            vocabulary learnt from the training documents.
        tokenizer: with `backbone`, what it was trained with: a preset's
            preprocessor, a KerasHub tokenizer, or a wordpiece `TextTokenizer`.
        masked_lm: also train masked LM on the same pairs (BERT's joint loss).
        negatives: `"other_document"` (NSP) or `"swapped"` (SOP); see the module doc.
        sequence_length: most tokens per pair; longer pairs are cut round-robin.
        mask_rate, learning_rate, warmup_fraction, epochs, batch_size, callbacks:
            as in `tfptm.pretrain.masked_lm`.
        validation_fraction: documents held out (their pairs, negatives
            included, drawn among themselves) for `validation_*` metrics.

    Returns a `Pretrained` (`objective` `"nsp"`, `"sop"`, `"nsp+mlm"` or
    `"sop+mlm"`) whose `tokenizer` is a wordpiece `TextTokenizer` on the
    vocabulary used, so `save_pretrained` writes the usual artifact.

    Example:
    >>> corpus = ["The cat sat. It slept. It woke up.", "Rain fell hard. Roads flooded. Cars stopped."] * 4
    >>> result = next_sentence(corpus, vocabulary_size=40, sequence_length=16, epochs=1, validation_fraction=0,
    ...                        num_layers=1, hidden_dim=8, intermediate_dim=16)
    >>> result.objective, sorted(k for k in result.metrics if k.startswith("train_nsp"))
    ('nsp+mlm', ['train_nsp_accuracy', 'train_nsp_loss'])
    """
    from tfptm.backbones.registry import get
    from tfptm.data.pairs import pair_batches, pair_preprocessor
    from tfptm.data.text import learn_vocabulary, tokenizer_layer

    where = "next_sentence"
    if negatives not in NEGATIVES:
        raise TfptmError(f"{where}: negatives is {negatives!r}; expected one of {', '.join(NEGATIVES)}")
    if not isinstance(sequence_length, int) or sequence_length < 8:
        raise TfptmError(f"{where}: sequence_length must be an integer >= 8; got {sequence_length!r}")
    documents = documents_of(corpus, where)
    if (backbone is None) != (tokenizer is None):
        raise TfptmError(f"{where}: pass a backbone and the tokenizer it was trained with together, or neither")
    if backbone is not None and backbone_kwargs:
        raise TfptmError(f"{where}: with a backbone, no backbone size arguments; got {sorted(backbone_kwargs)}")
    train_documents, validation_documents = split_documents(documents, validation_fraction, seed, where)
    if tokenizer is None:
        vocabulary = learn_vocabulary(train_documents, vocabulary_size, kind="wordpiece", lowercase=lowercase)
        tokenizer = tokenizer_layer(vocabulary, sequence_length, kind="wordpiece", lowercase=lowercase)
        backbone = get("transformer_encoder", vocabulary_size=len(vocabulary), max_sequence_length=sequence_length,
                       **backbone_kwargs)
    packer = pair_preprocessor(tokenizer, sequence_length)
    words = packer.tokenizer
    kept = kept_tokenizer(words, sequence_length, sorted(backbone.input))
    max_predictions = math.ceil(mask_rate * sequence_length) if masked_lm else None
    model = next_sentence_model(backbone, len(kept.vocabulary), max_predictions, learning_rate)
    generator = _mask_generator(words, mask_rate, max_predictions) if masked_lm else None

    def batches(docs, shuffle, pair_seed):
        pairs = sentence_pairs(docs, negatives, pair_seed)
        ds = pair_batches(pairs.texts_a, pairs.texts_b, pairs.labels, packer, max_length=sequence_length,
                          batch_size=batch_size, shuffle=shuffle, seed=seed, outputs=backbone.input)
        return ds.map(lambda x, y: _targets(x, y, generator), num_parallel_calls=tf.data.AUTOTUNE)

    train_data = batches(train_documents, True, seed)
    validation_data = batches(validation_documents, False, seed + 1) if validation_documents else None
    history = common.train_all_weights(model, train_data, epochs, learning_rate, warmup_fraction, validation_data,
                                       verbose, callbacks)
    objective = ("nsp" if negatives == "other_document" else "sop") + ("+mlm" if masked_lm else "")
    return Pretrained(objective, backbone, kept, model, history, final_metrics(history))


def continue_pretraining(preset, corpus, objective="nsp+mlm", sequence_length=128, learning_rate=5e-5, **kwargs):
    """Pre-trains an existing preset further on `corpus` (your domain's text), keeping its tokenizer.

    Args:
        preset: a preset handle or directory (`tfptm.backbones.presets.load_preset`),
            or a `(backbone, preprocessor)` pair it returned.
        corpus: as in `next_sentence`.
        objective: `"nsp+mlm"` (BERT's), `"sop+mlm"`, `"nsp"`, `"sop"`, or
            `"mlm"` (masked LM alone, on `tfptm.pretrain.masked_lm`'s windows).
        learning_rate: lower than from scratch: the weights are already trained.
        **kwargs: the other arguments of `next_sentence` (or `masked_lm`).

    The preset's wordpiece vocabulary and lowercasing are kept: the result's
    tokenizer gives the same ids as the preset's. `save_pretrained` writes
    the backbone and that vocabulary; fine-tune from the saved directory as
    from any pre-trained artifact.

    Example:
    >>> continue_pretraining("/no/such/preset", ["A. B."])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: Preset '/no/such/preset' is neither a directory nor a KerasHub preset name; ...
    """
    from tfptm.backbones.presets import load_preset

    if objective not in OBJECTIVES:
        raise TfptmError(f"continue_pretraining: objective is {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    backbone, preprocessor = preset if isinstance(preset, tuple) else load_preset(preset)
    if preprocessor is None:
        raise TfptmError(f"continue_pretraining: preset {preset!r} has no tokenizer; expected a text preset")
    if objective == "mlm":
        from tfptm.pretrain.mlm import masked_lm

        words = getattr(preprocessor, "tokenizer", preprocessor)
        kept = kept_tokenizer(words, sequence_length, sorted(backbone.input))
        result = masked_lm(corpus, backbone=backbone, vocabulary=kept.vocabulary, lowercase=kept.lowercase,
                           sequence_length=sequence_length, learning_rate=learning_rate, **kwargs)
        return result
    return next_sentence(corpus, backbone=backbone, tokenizer=preprocessor, masked_lm=objective.endswith("+mlm"),
                         negatives="other_document" if objective.startswith("nsp") else "swapped",
                         sequence_length=sequence_length, learning_rate=learning_rate, **kwargs)


def kept_tokenizer(words, sequence_length, outputs):
    """The wordpiece `TextTokenizer` equal to KerasHub tokenizer `words` (same vocabulary and lowercasing), or a `TfptmError`.

    Pre-trained artifacts store a `TextTokenizer`'s vocabulary; this keeps a
    preset's tokenizer in that form. Only WordPiece tokenizers with KerasHub's
    default splitting (BERT, MiniLM, DistilBERT...) are the same thing.

    Example:
    >>> import keras_hub
    >>> words = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hi"], lowercase=True)
    >>> kept_tokenizer(words, 8, ["token_ids"]).vocabulary[-1]
    'hi'
    """
    import keras_hub

    from tfptm.data.text import TextTokenizer, tokenizer_layer

    if isinstance(words, TextTokenizer):
        return tokenizer_layer(words.vocabulary, sequence_length, kind=words.kind, lowercase=words.lowercase,
                               outputs=outputs)
    same = isinstance(words, keras_hub.tokenizers.WordPieceTokenizer) and not words.strip_accents and words.split \
        and words.split_on_cjk and words.suffix_indicator == "##" and words.oov_token == "[UNK]"
    if not same:
        raise TfptmError(f"Tokenizer {type(words).__name__} cannot be kept in a tfptm artifact; expected a WordPiece "
                         "tokenizer with KerasHub's default splitting (BERT-style presets)")
    return tokenizer_layer([str(t) for t in words.get_vocabulary()], sequence_length, kind="wordpiece",
                           lowercase=bool(words.lowercase), outputs=outputs)


def _mask_generator(words, mask_rate, max_predictions):
    """`tfptm.pretrain.mask_generator`'s masking (80% [MASK], 10% random, 10% kept), never on [CLS], [SEP] or padding."""
    import keras_hub

    if not 0.0 < mask_rate < 1.0:
        raise TfptmError(f"next_sentence: mask_rate is {mask_rate}; expected 0 < mask_rate < 1 (BERT uses 0.15)")
    mask_id = getattr(words, "mask_token_id", None)
    if mask_id is None:
        raise TfptmError(f"next_sentence: tokenizer {type(words).__name__} has no [MASK] token; expected one for masked LM")
    return keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=int(words.vocabulary_size()), mask_selection_rate=mask_rate, mask_token_id=int(mask_id),
        mask_selection_length=max_predictions,
        unselectable_token_ids=sorted({int(words.pad_token_id), int(words.start_token_id), int(words.end_token_id)}),
        mask_token_rate=0.8, random_token_rate=0.1, _allow_python_workflow=False,
    )


def _targets(x, labels, generator):
    """A pair batch as `(inputs, targets, sample_weights)` for `next_sentence_model`."""
    targets, weights = {"nsp": labels}, {"nsp": tf.ones_like(labels, tf.float32)}
    if generator is None:
        return x, targets, weights
    masked = generator(x["token_ids"])
    x = {**x, "token_ids": tf.cast(masked["token_ids"], x["token_ids"].dtype),
         "mask_positions": tf.cast(masked["mask_positions"], "int32")}
    targets["mlm"], weights["mlm"] = masked["mask_ids"], masked["mask_weights"]
    return x, targets, weights
