"""What the pre-training objectives share: their result, its artifact, the text set-up and the training run."""

import dataclasses
import os
import warnings

import keras
import numpy as np

from tfptm.backbones.registry import get
from tfptm.backbones.saved import save_artifact
from tfptm.data.corpus import Corpus, read_corpus, token_windows
from tfptm.data.pipeline import finish
from tfptm.data.text import learn_vocabulary, tokenizer_layer
from tfptm.errors import TfptmError
from tfptm.training import BackupAndRestore, finetune, full, optimizer, recompile


@dataclasses.dataclass
class Pretrained:
    """The result of pre-training.

    Attributes:
        objective: `"masked_lm"`, `"causal_lm"` or `"supervised"`.
        backbone: the pre-trained backbone, to fine-tune with `tfptm.build_model`.
        tokenizer: the `TextTokenizer` it was pre-trained with (text objectives), else `None`.
        model: the pre-training model (backbone plus its pre-training head), as trained.
        history: per-epoch training history, as `tfptm.finetune` returns it.
        metrics: final numbers, e.g. held-out `loss` and `perplexity`.
    """

    objective: str
    backbone: keras.Model
    tokenizer: object
    model: keras.Model
    history: dict
    metrics: dict


def save_pretrained(path, pretrained):
    """Saves a `Pretrained` result as an artifact directory that `tfptm.backbones.get(path)` loads.

    The directory holds `backbone.keras`, the tokenizer's `vocabulary.txt`
    (text objectives) and `pretrained.json` with the objective and metrics;
    `tfptm.backbones.saved.load_artifact(path)` returns `(backbone, tokenizer)`.

    Example:
    >>> import os, tempfile, numpy as np, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> data = tfptm.data.from_arrays(np.random.rand(8, 8, 8, 1), np.arange(8) % 2, seed=0)
    >>> result = tfptm.pretrain.supervised(backbone, tfptm.Head("multiclass", num_classes=2), data, epochs=1)
    >>> path = save_pretrained(os.path.join(tempfile.mkdtemp(), "pretrained"), result)
    >>> tfptm.backbones.get(path).output.shape
    (None, 8, 8, 8)
    """
    if not isinstance(pretrained, Pretrained):
        raise TfptmError(f"save_pretrained: expected a Pretrained result; got {type(pretrained).__name__}")
    info = {"objective": pretrained.objective, "metrics": _plain(pretrained.metrics)}
    return save_artifact(path, pretrained.backbone, pretrained.tokenizer, info)


def _plain(metrics):
    return {k: float(v) if isinstance(v, (int, float, np.number)) else v for k, v in metrics.items()}


def documents_of(corpus, where):
    """The documents of `corpus`: a path (read with `read_corpus`), a `Corpus`, or a list of strings."""
    if isinstance(corpus, (str, os.PathLike)):
        return read_corpus(corpus).documents
    if isinstance(corpus, Corpus):
        return corpus.documents
    documents = list(np.asarray(corpus, dtype=object).reshape(-1)) if corpus is not None else []
    if not documents or not all(isinstance(d, str) for d in documents):
        raise TfptmError(f"{where}: corpus must be a path, a Corpus or a non-empty list of strings")
    return documents


def text_setup(documents, vocabulary, vocabulary_size, sequence_length, lowercase, where):
    """The tokenizer to pre-train with: from `vocabulary`, or a wordpiece vocabulary learnt from `documents`."""
    if not isinstance(sequence_length, int) or sequence_length < 4:
        raise TfptmError(f"{where}: sequence_length must be an integer >= 4; got {sequence_length!r}")
    if vocabulary is None:
        vocabulary = learn_vocabulary(documents, vocabulary_size, kind="wordpiece", lowercase=lowercase)
    return tokenizer_layer(list(vocabulary), sequence_length, kind="wordpiece", lowercase=lowercase)


def prepare_corpus(corpus, backbone, vocabulary, vocabulary_size, sequence_length, validation_fraction, lowercase, seed,
                   backbone_name, backbone_kwargs, where):  # fmt: skip
    """What both language-model objectives start from: `(train_documents, validation_documents, tokenizer, backbone)`.

    The tokenizer uses `vocabulary` or learns one from the training documents;
    with `backbone=None` the backbone is `backbone_name` built for that vocabulary.
    """
    documents = documents_of(corpus, where)
    if backbone is not None and (vocabulary is None or backbone_kwargs):
        raise TfptmError(
            f"{where}: with a backbone, pass the vocabulary it was built for and no backbone size arguments "
            f"(got vocabulary={'None' if vocabulary is None else 'a list'}, size arguments {sorted(backbone_kwargs)})"
        )
    train_documents, validation_documents = split_documents(documents, validation_fraction, seed, where)
    tokenizer = text_setup(train_documents, vocabulary, vocabulary_size, sequence_length, lowercase, where)
    if backbone is None:
        backbone = get(backbone_name, vocabulary_size=len(tokenizer.vocabulary), max_sequence_length=sequence_length,
                       **backbone_kwargs)
    return train_documents, validation_documents, tokenizer, backbone


def corpus_batches(train_documents, validation_documents, tokenizer, batch_size, seed, to_batches):
    """Training and validation (or `None`) data: token windows batched, then mapped by `to_batches` to model inputs."""
    train_data = to_batches(windows_dataset(train_documents, tokenizer, batch_size, seed))
    if not validation_documents:
        return train_data, None
    return train_data, to_batches(windows_dataset(validation_documents, tokenizer, batch_size, seed, shuffle=False))


def split_documents(documents, validation_fraction, seed, where):
    """Shuffles `documents` with `seed` and holds out `validation_fraction` of them (at least one, if any)."""
    if not 0.0 <= validation_fraction < 1.0:
        raise TfptmError(f"{where}: validation_fraction is {validation_fraction}; expected 0 <= fraction < 1")
    order = np.random.default_rng(seed).permutation(len(documents))
    held = int(round(validation_fraction * len(documents)))
    if validation_fraction > 0 and len(documents) >= 2:
        held = max(held, 1)
    return [documents[i] for i in order[held:]], [documents[i] for i in order[:held]]


def windows_dataset(documents, tokenizer, batch_size, seed, shuffle=True):
    """Batches of token-id windows `(batch, sequence_length)` from `documents`, reshuffled every epoch."""
    windows = token_windows(documents, tokenizer)
    import tensorflow as tf

    return finish(tf.data.Dataset.from_tensor_slices(windows), len(windows), batch_size, shuffle=shuffle, seed=seed)


def token_embedding(backbone):
    """The backbone's `ReversibleEmbedding` for tokens (to tie an output layer to), or `None`."""
    import keras_hub

    # KerasHub's backbones now build Keras's own ReversibleEmbedding; older ones, KerasHub's.
    kinds = tuple(k for k in (getattr(keras.layers, "ReversibleEmbedding", None), keras_hub.layers.ReversibleEmbedding) if k)
    tied = [layer for layer in backbone.layers if isinstance(layer, kinds)]
    named = [layer for layer in tied if layer.name == "token_embedding"]
    return (named or tied or [None])[0]


def backbone_inputs(backbone, sequence_length):
    """Fresh `keras.Input`s shaped like the backbone's (a dict for KerasHub backbones), with a known length."""
    def fresh(tensor, name):
        return keras.Input(shape=(sequence_length,), dtype=tensor.dtype, name=name)

    if isinstance(backbone.input, dict):
        return {name: fresh(tensor, name) for name, tensor in backbone.input.items()}
    return fresh(backbone.input, "token_ids")


def feed(backbone, token_ids):
    """The backbone's inputs for a batch of token ids (0 = padding), as `TextTokenizer` writes them."""
    import tensorflow as tf

    if not isinstance(backbone.input, dict):
        return token_ids
    every = {"token_ids": token_ids, "padding_mask": tf.not_equal(token_ids, 0), "segment_ids": tf.zeros_like(token_ids)}
    missing = [name for name in backbone.input if name not in every]
    if missing:
        raise TfptmError(f"backbone takes inputs {missing}; expected some of {', '.join(every)}")
    return {name: tf.cast(every[name], backbone.input[name].dtype) for name in backbone.input}


def final_metrics(history):
    """The last epoch's numbers, named `train_loss`, `validation_loss`... instead of Keras's `loss`, `val_loss`."""
    return {
        (key.replace("val_", "validation_", 1) if key.startswith("val_") else f"train_{key}"): float(values[-1])
        for key, values in history.items()
        if key != "stage"
    }


def train_all_weights(model, data, epochs, learning_rate, warmup_fraction, validation_data, verbose, callbacks=None):
    """Trains every weight of `model` (which holds the backbone) with `tfptm.finetune`, one stage.

    BERT's recipe: AdamW (weight decay 0.01, none on biases and norms) whose
    rate warms up linearly over `warmup_fraction` of the steps to
    `learning_rate`, then decays linearly to 0; `warmup_fraction=None` keeps
    the rate constant (plain Adam). Post-norm Transformers trained at a
    constant rate from the first step are the classic unstable case.

    `callbacks` go to `model.fit`. With a `tfptm.training.BackupAndRestore`
    among them, the same call after a kill resumes from its last backup (the
    optimizer's step, hence the schedule, included) and returns the whole
    history; a backup of a finished run (kept with `delete_checkpoint=False`)
    restores its final weights without training again.
    """
    if warmup_fraction is not None:
        steps = int(data.cardinality())
        if steps <= 0:
            raise TfptmError(f"pre-training data has no known number of batches ({steps}); expected a finite dataset")
        recompile(model, optimizer=optimizer("adamw", learning_rate, weight_decay=0.01, warmup_fraction=warmup_fraction,
                                             decay="linear", total_steps=steps * epochs))
    _restore_finished(model, callbacks)
    return finetune(model, data, full(epochs, learning_rate), validation_data=validation_data, callbacks=callbacks,
                    verbose=verbose)


def _restore_finished(model, callbacks):
    """Loads the final weights of a finished run's backup: `finetune` skips its finished stages without loading them."""
    backups = [c for c in callbacks or [] if isinstance(c, BackupAndRestore)]
    state = backups[0].state() if backups else None
    if state and state.get("stage_done"):
        with warnings.catch_warnings():  # the optimizer state is not needed: nothing more trains
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            model.load_weights(os.path.join(backups[0].backup_dir, state["weights"]))


def __getattr__(name):  # names that moved away keep working for one release (tfptm/_moved.py)
    from tfptm._moved import module_getattr

    return module_getattr('tfptm.pretrain.common', name)
