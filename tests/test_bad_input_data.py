"""Bad input to the data loaders, one row per case: a clear `TfptmError` naming what and where, or a counted skip.

| case | outcome |
|---|---|
| truncated or corrupt JPEG/PNG, non-image file, folder inside a class folder | skip, counted with its path; `strict=True`: error naming it |
| empty class folder, class folder of only bad files, single class, no classes | error naming the folder |
| missing, unreadable or non-directory image folder | error naming it |
| too few images per class to split | error |
| CSV/JSONL: missing column, non-UTF-8, label not in label set, more labels than num_classes, empty label, bad JSON, too few fields | error naming the file (and line) |
| CSV/JSONL: empty text | skip, counted with file:line; `strict=True`: error |
| arrays: mismatched length, wrong rank, ragged rows, NaN/inf (also per dict input), empty | error naming what |
| an image size the backbone cannot take | error naming both shapes |
| a TFDS data set not prepared in data_dir | error saying how to prepare it |
"""

import json
import dataclasses
import os
from typing import Callable

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.errors import TfptmError

PNG = tf.io.encode_png(np.full((8, 8, 3), 90, "uint8")).numpy()
JPEG = tf.io.encode_jpeg(np.random.default_rng(0).integers(0, 255, (16, 16, 3)).astype("uint8")).numpy()


def image_tree(root, files):
    """Writes `{relative path: bytes or None (a folder)}` under `root`."""
    for rel, data in files.items():
        path = root / rel
        if data is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return root


GOOD = {f"{c}/{i}.png": PNG for c in ("cat", "dog") for i in range(3)}


def folder(extra, drop=()):
    """An image folder of GOOD plus `extra` files, less `drop`, loaded without a split."""

    def make(tmp_path):
        files = {k: v for k, v in {**GOOD, **extra}.items() if k not in drop}
        root = image_tree(tmp_path / "images", files)
        return lambda strict: tfptm.data.image_folder(root, (4, 4), validation_fraction=None, strict=strict)

    return make


def loader(name, image_size=(4, 4), make=None, **kwargs):
    """`image_folder(tmp_path / name, ...)`, after `make(path)` if given."""

    def setup(tmp_path):
        if make:
            make(tmp_path / name)
        return lambda strict: tfptm.data.image_folder(tmp_path / name, image_size, strict=strict, **kwargs)

    return setup


def table(name, content, **kwargs):
    def make(tmp_path):
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return lambda strict: tfptm.data.read_text_table(path, strict=strict, **kwargs)

    return make


def arrays(x, y=None):
    return lambda tmp_path: lambda strict: tfptm.data.from_arrays(x, y)


def unreadable(tmp_path, monkeypatch):
    root = image_tree(tmp_path / "images", GOOD)
    real = os.listdir

    def listdir(path):
        if os.fspath(path) == str(root / "dog"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)  # chmod 000 does not stop root, who may run the tests
    return lambda strict: tfptm.data.image_folder(root, (4, 4), validation_fraction=None, strict=strict)


def backbone_too_small(tmp_path):
    inputs = keras.Input((None, None, 3))
    backbone = keras.Model(inputs, keras.layers.Conv2D(2, 7)(inputs))
    return lambda strict: tfptm.data.check_input_shape(backbone, (5, 5, 3))


@dataclasses.dataclass
class Case:
    id: str
    make: Callable
    outcome: str  # "error" or "skip"
    message: str  # in the error, or the skip's reason
    where: str = ""  # a file or line the message must name


CASES = [
    # image folders
    Case("truncated_jpeg", folder({"cat/bad.jpg": JPEG[: len(JPEG) // 2]}), "skip", "corrupt or truncated image", "cat/bad.jpg"),
    Case("truncated_png", folder({"dog/bad.png": PNG[:-12]}), "skip", "corrupt or truncated image", "dog/bad.png"),
    Case("corrupt_jpeg", folder({"cat/x.jpg": JPEG[:3] + bytes(200)}), "skip", "corrupt or truncated image", "cat/x.jpg"),
    Case("non_image_file", folder({"dog/readme.txt": b"hello"}), "skip", "not an image", "dog/readme.txt"),
    Case("image_named_wrong", folder({"dog/photo.jpg": b"GIF8 nope"}), "skip", "not an image", "dog/photo.jpg"),
    Case("empty_file", folder({"dog/empty.png": b""}), "skip", "not an image", "dog/empty.png"),
    Case("folder_in_class", folder({"dog/more": None}), "skip", "is a folder", "dog/more"),
    Case("empty_class_folder", folder({"emu": None}), "error", "is empty", "emu"),
    Case("only_bad_files", folder({"emu/a.png": b"x", "emu/b.jpg": JPEG[:40]}), "error", "no readable image (2 bad files)", "emu"),
    Case("single_class", folder({}, drop=[k for k in GOOD if k.startswith("dog")]), "error", "only 'cat'", "images"),
    Case("no_class_folders", loader("images", make=lambda p: p.mkdir()), "error", "0 class sub-folder(s)", "images"),
    Case("unreadable_class_folder", unreadable, "error", "cannot be read (Permission denied)", "dog"),
    Case("missing_folder", loader("nope"), "error", "does not exist", "nope"),
    Case("folder_is_a_file", loader("file", make=lambda p: p.write_text("x")), "error", "is a file; expected a folder", "file"),
    Case("bad_image_size", loader("images", (0, 4), make=lambda p: image_tree(p, GOOD)), "error", "image_size is (0, 4)"),
    Case("too_few_to_split", loader("images", validation_fraction=0.1, make=lambda p: image_tree(p, GOOD)), "error",
         "so that every class is on both sides"),
    # CSV / JSONL text
    Case("csv_missing_column", table("t.csv", "review,label\nok,1\n"), "error", "no column ['text']; found columns ['review', 'label']", "t.csv"),
    Case("csv_empty_text", table("t.csv", "text,label\ngood,1\n,0\nbad,0\n"), "skip", "empty text", "t.csv:3"),
    Case("jsonl_blank_text", table("t.jsonl", '{"text": "a", "label": 1}\n{"text": "  ", "label": 0}\n{"text": "b", "label": 0}\n'), "skip", "empty text", "t.jsonl:2"),
    Case("csv_non_utf8", table("t.csv", b"text,label\ngood,1\ncaf\xe9,0\n"), "error", "byte 0xe9 is not UTF-8", "t.csv:3"),
    Case("label_not_in_set", table("t.csv", "text,label\na,pos\nb,meh\n", class_names=["neg", "pos"]), "error",
         "label 'meh' is not in the label set ['neg', 'pos']", "t.csv:3"),
    Case("more_labels_than_num_classes", table("t.csv", "text,label\na,x\nb,y\nc,z\n", num_classes=2), "error",
         "3 distinct labels ['x', 'y', 'z']; expected at most num_classes=2", "t.csv"),
    Case("csv_empty_label", table("t.csv", "text,label\na,1\nb,\n"), "error", "'label' is ''", "t.csv:3"),
    Case("csv_too_few_fields", table("t.csv", "text,label\na,1\nb\n"), "error", "1 fields; expected 2", "t.csv:3"),
    Case("csv_empty_file", table("t.csv", ""), "error", "is empty; expected a header row", "t.csv"),
    Case("csv_only_empty_texts", table("t.csv", "text,label\n,1\n"), "error", "has no rows with text (1 empty)", "t.csv"),
    Case("jsonl_bad_json", table("t.jsonl", '{"text": "a", "label": 1}\n{"text": "b", \n'), "error", "not valid JSON", "t.jsonl:2"),
    Case("jsonl_missing_key", table("t.jsonl", '{"text": "a", "lbl": 1}\n'), "error", "no ['label'] key; found keys ['lbl', 'text']", "t.jsonl:1"),
    Case("jsonl_not_an_object", table("t.jsonl", '["a", 1]\n'), "error", "a JSON list; expected an object", "t.jsonl:1"),
    Case("jsonl_text_not_string", table("t.jsonl", '{"text": 5, "label": 1}\n'), "error", "'text' is 5; expected a string", "t.jsonl:1"),
    Case("unknown_format", table("t.xlsx", "x"), "error", "cannot tell the format", "t.xlsx"),
    Case("missing_table", lambda p: lambda strict: tfptm.data.read_text_table(p / "none.csv"), "error", "does not exist", "none.csv"),
    # NumPy arrays
    Case("mismatched_length", arrays(np.zeros((3, 2)), np.zeros(4)), "error", "3 feature rows but labels of shape (4,)"),
    Case("scalar_features", arrays(np.float32(1.0)), "error", "no batch axis"),
    Case("labels_rank_3", arrays(np.zeros((2, 2)), np.zeros((2, 1, 1))), "error", "labels of shape (2, 1, 1)"),
    Case("ragged_rows", arrays([[1, 2], [3]], [0, 1]), "error", "expected rows of equal shape"),
    Case("nan_features", arrays(np.array([[0.0, 1.0], [np.nan, 1.0]]), [0, 1]), "error", "NaN or infinity (first at example 1)"),
    Case("inf_in_dict_input", arrays({"a": np.zeros((2, 2)), "b": np.array([np.inf, 0.0])}), "error", "input 'b': features contain NaN"),
    Case("nan_labels", arrays(np.zeros((2, 2)), np.array([0.0, np.nan])), "error", "labels contain NaN"),
    Case("dict_lengths_differ", arrays({"token_ids": np.zeros((3, 4)), "padding_mask": np.zeros((2, 4))}), "error",
         "different numbers of examples {'token_ids': 3, 'padding_mask': 2}"),
    Case("empty_dict", arrays({}), "error", "empty dict"),
    Case("empty_features", arrays(np.zeros((0, 3))), "error", "features are empty"),
    # backbones and TFDS
    Case("image_too_small_for_backbone", backbone_too_small, "error", "(5, 5, 3) are too small for the backbone"),
    Case("tokenizer_from_another_checkpoint", lambda p: lambda strict: tfptm.data.check_tokenizer(
        tfptm.data.text.tokenizer_layer(["", "[UNK]"] + [f"w{i}" for i in range(40)], 8),
        tfptm.backbones.get("lstm_encoder", vocabulary_size=30, embedding_dim=4, units=4)), "error",
         "The tokenizer has 42 tokens but backbone", "embeds only 30"),
    Case("tfds_not_prepared", lambda p: lambda strict: tfptm.data.tfds_dataset("mnist", p), "error",
         "is not prepared in data_dir", "tfds build mnist"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch):
    make = case.make
    call = make(tmp_path, monkeypatch) if make is unreadable else make(tmp_path)
    if case.outcome == "error":
        with pytest.raises(TfptmError) as info:
            call(strict=False)
        assert case.message in str(info.value) and case.where in str(info.value)
        return
    result = call(strict=False)
    summary = result.summary()
    assert summary["num_skipped"] == 1 and summary["skipped_by_reason"] == {summary["skipped"][0]["reason"]: 1}
    skip = summary["skipped"][0]
    assert case.message in skip["reason"] and skip["where"].endswith(case.where)
    assert "{{" not in skip["reason"] and "__wrapped__" not in skip["reason"] and len(skip["reason"]) < 80  # user-facing
    kept = summary.get("num_train", summary.get("num_examples"))
    assert kept == (6 if "images" in skip["where"] else 2)
    with pytest.raises(TfptmError) as info:
        call(strict=True)
    assert case.where in str(info.value) and case.message in str(info.value) and "strict=True" in str(info.value)


def test_the_error_is_a_value_error_with_exit_status_2():
    with pytest.raises(ValueError) as info:
        tfptm.data.from_arrays(np.zeros((3, 2)), np.zeros(4))
    assert info.value.exit_code == 2


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\r", "\x0b", "\x1c"])
@pytest.mark.parametrize("name", ["t.jsonl", "t.csv"])
def test_line_separators_inside_strings_are_text_not_line_ends(tmp_path, separator, name):
    texts = [f"first{separator}half {i}" for i in range(4)]
    if name.endswith(".jsonl"):  # legal in JSON strings, written raw as json.dumps(ensure_ascii=False) does
        body = "".join(json.dumps({"text": t, "label": i % 2}, ensure_ascii=False) + "\n" for i, t in enumerate(texts))
    else:
        body = "text,label\n" + "".join(f'"{t}",{i % 2}\n' for i, t in enumerate(texts))
    (tmp_path / name).write_bytes(body.encode("utf-8"))
    table = tfptm.data.read_text_table(tmp_path / name, strict=True)
    assert table.texts == texts and table.labels.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("x", [
    ["a good film", "bad", "so so"],
    np.array(["a good film", "bad", "so so"]),
    np.array([b"a good film", b"bad", b"so so"]),
    np.array(["a good film", "bad", "so so"], dtype=object),
])
def test_lists_and_numpy_arrays_of_strings_become_what_keras_takes(x):
    checked, _ = tfptm.data.check_arrays(x, [0, 1, 0])
    assert checked.dtype == object and checked.tolist() == ["a good film", "bad", "so so"]


def test_bytes_that_are_not_utf8_are_one_error():
    with pytest.raises(TfptmError, match="not UTF-8"):
        tfptm.data.check_arrays(np.array([b"caf\xe9"]))
