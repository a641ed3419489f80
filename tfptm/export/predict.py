"""Predictions from an exported artifact alone: a SavedModel or a `.tflite` file, on image files or text.

Reads only the artifact (and the labels and metadata beside a `.tflite`),
never training code, so it answers "what does the model I shipped say?".
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from tfptm.errors import TfptmError, one_line
from tfptm.export.litert import read_metadata, run_tflite, signature_runner
from tfptm.export.serving import LABELS_FILE, RAW_TEXT_PAIRS, existing_versions
from tfptm.export.signatures import EMBEDDINGS
from tfptm.export.signatures import decode_images


THRESHOLD = 0.5  # a multilabel head's labels present, as its serving signatures decide them


def predict(artifact, inputs, top_k=3):
    """Top-`top_k` `(label, score)` pairs for each input, best first.

    For a multilabel head, the labels present (probability >= 0.5), best
    first, however many; for a regression head, `(name, value)` for each
    predicted value.

    Args:
        artifact: a SavedModel version directory, a model directory of
            versions (the highest is used, as TF Serving does), or a `.tflite`
            file with its `.labels.txt` and `.json` metadata beside it.
        inputs: image file paths (JPEG, PNG, GIF, BMP) for an image model,
            lines of text for a text model with a `raw_text` signature (a
            token classifier gives its entities, `"TYPE: text [start:end]"`
            with their scores, all of them, in text order), or
            text pairs `"text_a<TAB>text_b"` for a pair model with a
            `raw_text_pairs` signature, or `"question<TAB>context"` for a
            question answerer (its answer `"text [start:end]"` and score).
        top_k: how many labels to return per input.

    Example:
    >>> import tempfile, os, numpy as np, tensorflow as tf, tfptm
    >>> backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8,))
    >>> model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=2))
    >>> base = tempfile.mkdtemp()
    >>> _ = tfptm.export.saved_model(model, base, "digits", class_names=["no", "yes"])
    >>> image = os.path.join(base, "x.png")
    >>> _ = tf.io.write_file(image, tf.io.encode_png(np.zeros((8, 8, 1), "uint8")))
    >>> sorted(label for label, score in predict(os.path.join(base, "digits"), [image], top_k=2)[0])
    ['no', 'yes']
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise TfptmError(f"predict: top_k must be a positive integer; got {top_k!r}")
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise TfptmError("predict: no inputs; expected image file paths or lines of text")
    path = Path(artifact)
    if path.suffix == ".tflite":
        outputs, labels, task = _run_tflite(path, inputs)
    elif path.is_dir():
        outputs, labels, task = _run_saved_model(_version_dir(path), inputs)
    else:
        raise TfptmError(
            f"Artifact {str(path)!r} does not exist or is not an export; expected a SavedModel directory "
            "(<base>/<name>/ or <base>/<name>/<version>/) or a .tflite file"
        )
    if task in ("token_classification", "question_answering"):  # the entities found, in text order; the answer
        return outputs
    if task == "regression":  # every predicted value, by name
        return [[(name, round(float(v), 6)) for name, v in zip(labels, row)] for row in np.asarray(outputs)]
    if task == "multilabel":  # the labels present (probability >= 0.5), best first
        return [[(label, score) for label, score in row if score >= THRESHOLD]
                for row in top_labels(outputs, labels, len(labels))]
    return top_labels(outputs, labels, top_k)


def entity_predictions(served):
    """`[[("TYPE: text [start:end]", score), ...], ...]` from a token classifier's `raw_text` outputs: the entities
    of each text in order, with character offsets (end exclusive) and the mean tag probability of their words."""
    texts, types = served["entity_texts"].numpy(), served["entity_types"].numpy()
    starts, ends, scores = served["entity_starts"].numpy(), served["entity_ends"].numpy(), served["entity_scores"].numpy()
    return [[(f"{types[i, j].decode()}: {texts[i, j].decode()} [{starts[i, j]}:{ends[i, j]}]", round(float(scores[i, j]), 6))
             for j in range(int(n))] for i, n in enumerate(served["num_entities"].numpy())]


def top_labels(probabilities, labels, top_k=3):
    """`[[(label, score), ...], ...]` from a batch of classifier outputs (one sigmoid unit means 2 classes).

    Example:
    >>> top_labels([[0.1, 0.7, 0.2]], ["a", "b", "c"], top_k=2)
    [[('b', 0.7), ('c', 0.2)]]
    """
    probabilities = np.asarray(probabilities, dtype="float64")
    if probabilities.ndim == 1 or probabilities.shape[-1] == 1:
        positive = probabilities.reshape(-1, 1)
        probabilities = np.concatenate([1 - positive, positive], axis=-1)
    if probabilities.shape[-1] != len(labels):
        raise TfptmError(f"The model has {probabilities.shape[-1]} outputs but {len(labels)} labels")
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :top_k]
    return [[(labels[i], round(float(row[i]), 6)) for i in best] for row, best in zip(probabilities, order)]


def format_predictions(inputs, predictions):
    """One line per input: the input, then `label (score)` pairs, as `tfptm predict` prints them."""
    return "\n".join(
        f"{text}\t" + "  ".join(f"{label} ({score:.4f})" for label, score in pairs)
        for text, pairs in zip(inputs, predictions)
    )


def _version_dir(path):
    if (path / "saved_model.pb").is_file():
        return path
    versions = existing_versions(path)
    if not versions:
        raise TfptmError(
            f"{str(path)!r} is neither a SavedModel (no saved_model.pb) nor a model directory with integer versions"
        )
    return path / str(versions[-1])


def _run_saved_model(path, inputs):
    try:
        import tensorflow_text  # noqa: F401  registers the ops of in-graph KerasHub tokenizers
    except ImportError:
        pass
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # TF raises OSError, NotFoundError, ValueError... for unloadable models
        raise TfptmError(f"SavedModel {str(path)!r} cannot be loaded: {one_line(error)}") from None
    signatures = loaded.signatures
    if "image_bytes" in signatures:
        served = signatures["image_bytes"](image_bytes=tf.constant([_read(i) for i in inputs]))
    elif "answer" in signatures:  # a question answerer (tfptm.tasks.spans): 'question<TAB>context'
        questions, contexts = split_pairs(inputs, "a question answerer expects 'question<TAB>context'")
        served = signatures["answer"](question=tf.constant(questions), context=tf.constant(contexts))
        return answer_predictions(served), None, "question_answering"
    elif RAW_TEXT_PAIRS in signatures:
        texts_a, texts_b = split_pairs(inputs)
        served = signatures[RAW_TEXT_PAIRS](text_a=tf.constant(texts_a), text_b=tf.constant(texts_b))
    elif "raw_text" in signatures:
        served = signatures["raw_text"](text=tf.constant(inputs))
        if "entity_texts" in served:  # a token classifier (tfptm.tasks.tokens): its entities, not labels
            return entity_predictions(served), None, "token_classification"
    elif _string_input(signatures.get("serving_default")):  # a model on raw strings (a TF Hub text module inside)
        served = signatures["serving_default"](**{_string_input(signatures["serving_default"]): tf.constant(inputs)})
    else:
        raise TfptmError(
            f"SavedModel {str(path)!r} has signatures {sorted(signatures)}; predict needs 'image_bytes' (image "
            "models) or 'raw_text' (text models exported with a tokenizer)"
        )
    labels = (path / "assets" / LABELS_FILE).read_text(encoding="utf-8").rstrip("\n").split("\n")  # one label per "\n" line, as the in-graph table reads it
    if "values" in served:
        return served["values"].numpy(), labels, "regression"
    return served["probabilities"].numpy(), labels, "multilabel" if "labels_present" in served else "multiclass"


def answer_predictions(served):
    """`[[("answer text [start:end]", score)], ...]` from a question answerer's `answer` outputs: the best span of
    each context, with character offsets (end exclusive) and its score (start + end logits); `[]` where none."""
    texts, starts = served["answer_text"].numpy(), served["answer_start"].numpy()
    ends, scores = served["answer_end"].numpy(), served["score"].numpy()
    return [[(f"{text.decode()} [{start}:{end}]", round(float(score), 6))] if start >= 0 else []
            for text, start, end, score in zip(texts, starts, ends, scores)]


def split_pairs(inputs, expected="a text-pair model expects 'text_a<TAB>text_b'"):
    """`(texts_a, texts_b)` from inputs `"text_a<TAB>text_b"`, what a pair model's `raw_text_pairs` takes.

    Example:
    >>> split_pairs(["Opens a file.\\tReturns a handle.", "a\\tb"])
    (['Opens a file.', 'a'], ['Returns a handle.', 'b'])
    """
    pairs = [str(text).split("\t") for text in inputs]
    bad = next((i for i, parts in enumerate(pairs) if len(parts) != 2 or not all(p.strip() for p in parts)), None)
    if bad is not None:
        raise TfptmError(f"input {bad + 1} is {inputs[bad][:60]!r}; {expected} "
                         "(two non-empty texts separated by one tab)")
    return [a for a, _ in pairs], [b for _, b in pairs]


def embed_saved_model(artifact, texts, batch_size=64):
    """Vectors `(len(texts), dim)` from an exported embedder's `embed` signature (raw strings in, `embeddings` out).

    `artifact` is a SavedModel version directory or a model directory of versions (the highest is used).

    Example:
    >>> embed_saved_model("/no/such/export", ["a"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfptm.errors.TfptmError: '/no/such/export' is neither a SavedModel ... nor a model directory with integer versions
    """
    path = _version_dir(Path(artifact))
    try:
        import tensorflow_text  # noqa: F401  registers the ops of in-graph KerasHub tokenizers
    except ImportError:
        pass
    try:
        signatures = tf.saved_model.load(str(path)).signatures
    except Exception as error:  # TF raises OSError, NotFoundError, ValueError... for unloadable models
        raise TfptmError(f"SavedModel {str(path)!r} cannot be loaded: {one_line(error)}") from None
    if "embed" not in signatures:
        raise TfptmError(f"SavedModel {str(path)!r} has signatures {sorted(signatures)}; expected 'embed' (an "
                         "embedder exported with its tokenizer)")
    texts = [str(t) for t in texts]
    return np.concatenate([signatures["embed"](text=tf.constant(texts[i: i + batch_size]))[EMBEDDINGS].numpy()
                           for i in range(0, len(texts), batch_size)])


def _string_input(signature):
    """The name of a signature's one input if it is a 1-D string tensor, else `None`."""
    specs = signature.structured_input_signature[1] if signature is not None else {}
    if len(specs) != 1:
        return None
    (name, spec), = specs.items()
    return name if spec.dtype == tf.string and spec.shape.rank == 1 else None


def _run_tflite(path, inputs):
    if not path.is_file():
        raise TfptmError(f"TFLite file {str(path)!r} does not exist")
    metadata = read_metadata(path)
    runner = signature_runner(path)
    details = list(runner.get_input_details().values())
    shape = details[0]["shape"]
    if len(details) != 1 or len(shape) != 4:
        raise TfptmError(
            f"{str(path)!r} takes token ids, not text (TFLite has no in-graph tokenizer); "
            "predict on text with the SavedModel and its raw_text signature"
        )
    spec = tf.TensorSpec([None, *shape[1:]], tf.float32)
    images = decode_images(tf.constant([_read(i) for i in inputs]), spec, metadata.get("image_scale", 1.0))
    task = metadata.get("task", "multiclass")
    names = metadata["value_names"] if task == "regression" else metadata["labels"]
    return run_tflite(path, images.numpy()), names, task


def _read(image_path):
    try:
        data = Path(image_path).read_bytes()
    except OSError as error:
        raise TfptmError(f"Cannot read image {image_path!r}: {error.strerror or error}") from None
    try:
        tf.io.decode_image(data, expand_animations=False)
    except (tf.errors.InvalidArgumentError, ValueError):
        raise TfptmError(f"{image_path!r} is not an image TensorFlow can decode (JPEG, PNG, GIF or BMP)") from None
    return data
