"""Property-based tests: whatever the input, a data loader gives a result or a `TfptmError`, never another exception."""

import json
import os
import shutil
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tfptm
from tfptm.errors import TfptmError

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dtypes = st.one_of(hnp.floating_dtypes(sizes=(32, 64)), hnp.integer_dtypes(), hnp.boolean_dtypes(),
                   hnp.unicode_string_dtypes(max_len=3))
any_array = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
nested = st.recursive(st.one_of(st.integers(), st.floats(), st.text(max_size=2), st.none()),
                      lambda inner: st.lists(inner, max_size=3), max_leaves=8)


def result_or_clean_error(function, *args, **kwargs):
    try:
        result = function(*args, **kwargs)
    except TfptmError as error:
        assert str(error) and "\n" not in str(error).strip()
        event("TfptmError")
        return None
    event("result")
    return result


@FAST
@given(x=st.one_of(any_array, nested, st.dictionaries(st.sampled_from(["token_ids", "padding_mask"]), any_array)),
       y=st.one_of(st.none(), any_array, nested))
def test_check_arrays_accepts_or_refuses_cleanly(x, y):
    checked = result_or_clean_error(tfptm.data.check_arrays, x, y)
    if checked is not None:
        features, labels = checked
        n = len(next(iter(features.values()))) if isinstance(features, dict) else len(features)
        assert n > 0 and (labels is None or len(labels) == n)


labelled = st.integers(1, 14).flatmap(lambda n: st.tuples(
    hnp.arrays("float32", (n, 2), elements=st.floats(-9, 9, width=32)), hnp.arrays("int32", n, elements=st.integers(0, 2))))


@FAST
@given(xy=st.one_of(labelled, st.tuples(any_array, any_array)),
       test_fraction=st.one_of(st.floats(0.05, 0.6), st.floats(-1, 2), st.just(float("nan"))), seed=st.integers(0, 5))
def test_splits_accept_or_refuse_cleanly(xy, test_fraction, seed):
    split = result_or_clean_error(tfptm.data.train_test_split, *xy, test_fraction, seed)
    if split is not None:
        (x_train, y_train), (x_test, y_test) = split
        assert len(x_train) + len(x_test) == len(xy[0]) and set(y_train.tolist()) == set(y_test.tolist())


raw_rows = st.lists(st.tuples(st.text(max_size=12), st.one_of(st.text(max_size=3), st.integers(-2, 12))), max_size=8)
good_rows = st.lists(st.tuples(st.text(min_size=1, max_size=12), st.sampled_from(["0", "1", "a"])), min_size=1, max_size=8)


@FAST
@given(data=st.one_of(good_rows, st.binary(max_size=200), raw_rows), fmt=st.sampled_from(["csv", "tsv", "jsonl"]),
       class_names=st.one_of(st.none(), st.none(), st.lists(st.sampled_from(["0", "1", "a", "b"]), unique=True, max_size=4)),
       num_classes=st.one_of(st.none(), st.none(), st.integers(0, 4)), strict=st.booleans())
def test_read_text_table_accepts_or_refuses_cleanly(data, fmt, class_names, num_classes, strict):
    directory = tempfile.mkdtemp()
    try:
        path = os.path.join(directory, f"t.{fmt}")
        if isinstance(data, list):
            if fmt == "jsonl":
                content = "\n".join(json.dumps({"text": t, "label": label}) for t, label in data)
            else:
                import csv
                import io

                buffer = io.StringIO()
                writer = csv.writer(buffer, delimiter="\t" if fmt == "tsv" else ",")
                writer.writerows([("text", "label"), *data])
                content = buffer.getvalue()
            data = content.encode("utf-8", "surrogatepass")
        with open(path, "wb") as f:
            f.write(data)
        table = result_or_clean_error(tfptm.data.read_text_table, path, class_names=class_names,
                                      num_classes=num_classes, strict=strict)
        if table is not None:
            assert len(table.texts) == len(table.labels) > 0 and all(t.strip() for t in table.texts)
            assert 0 <= table.labels.min() and table.labels.max() < len(table.class_names)
            assert not (strict and table.skipped)
    finally:
        shutil.rmtree(directory)


PNG = tf.io.encode_png(np.arange(48, dtype="uint8").reshape(4, 4, 3)).numpy()
JPEG = tf.io.encode_jpeg(np.arange(48, dtype="uint8").reshape(4, 4, 3)).numpy()
file_bytes = st.one_of(st.just(PNG), st.just(JPEG), st.binary(max_size=40),
                       st.builds(lambda data, n: data[:n], st.sampled_from([PNG, JPEG]), st.integers(0, 80)))
trees = st.dictionaries(st.sampled_from(["a", "b", "c", ".hidden"]),
                        st.dictionaries(st.sampled_from(["1.png", "2.jpg", "3.bin", "4", ".x"]), file_bytes, max_size=4),
                        max_size=3)
good_files = st.dictionaries(st.sampled_from(["1.png", "2.jpg", "3.png"]), st.sampled_from([PNG, JPEG]), min_size=2)
mostly_good = st.tuples(good_files, good_files, trees).map(lambda t: {**t[2], "a": t[0], "b": t[1]})


@FAST
@given(tree=st.one_of(mostly_good, trees), fraction=st.sampled_from([None, 0.5]), strict=st.booleans())
def test_image_folder_accepts_or_refuses_cleanly(tree, fraction, strict):
    root = tempfile.mkdtemp()
    try:
        for class_name, files in tree.items():
            os.makedirs(os.path.join(root, class_name))
            for name, data in files.items():
                with open(os.path.join(root, class_name, name), "wb") as f:
                    f.write(data)
        loaded = result_or_clean_error(tfptm.data.image_folder, root, (3, 3), validation_fraction=fraction,
                                       strict=strict, batch_size=64)
        if loaded is not None:
            visible = sum(len([n for n in files if not n.startswith(".")]) for c, files in tree.items() if c[0] != ".")
            assert loaded.num_train + loaded.num_validation + len(loaded.skipped) == visible
            assert sum(len(y) for _, y in loaded.train) == loaded.num_train
    finally:
        shutil.rmtree(root)


VOCAB = ["", "[UNK]", "a", "b", "c"]


@FAST
@given(texts=st.one_of(st.lists(st.text(alphabet="abc d", max_size=30), min_size=1, max_size=6),
                      st.lists(st.text(max_size=5), max_size=3), st.lists(st.integers(), max_size=2)),
       max_length=st.one_of(st.integers(1, 9), st.integers(-1, 0)), batch_size=st.one_of(st.integers(1, 4), st.just(0)),
       boundaries=st.one_of(st.none(), st.none(), st.lists(st.integers(0, 10), max_size=3)))
def test_text_batches_accept_or_refuse_cleanly(texts, max_length, batch_size, boundaries):
    tokenizer = tfptm.data.text.tokenizer_layer(VOCAB, sequence_length=4)
    ds = result_or_clean_error(tfptm.data.text_batches, texts, tokenizer=tokenizer, max_length=max_length,
                               batch_size=batch_size, bucket_boundaries=boundaries, seed=0)
    if ds is not None:
        shapes = [tuple(b.shape) for b in ds]
        assert sum(s[0] for s in shapes) == len(texts) and all(s[1] <= max_length for s in shapes)


@pytest.mark.parametrize("header", [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF0000WEBP", b"BM"])
def test_image_format_never_raises(header):
    assert tfptm.data.images.image_format(header + b"\x00" * 4) in (None, "JPEG", "PNG", "WebP", "BMP")
