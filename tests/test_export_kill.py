"""SIGKILL a real exporting process mid-write: no partial version is ever visible, earlier versions survive."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import tensorflow as tf

import tfptm
from conftest import assert_no_partial

# A classifier with ~40 MB of weights, so writing its variables takes long enough to be caught.
EXPORTER = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras, tfptm
    inputs = keras.Input((2000,), name="features")
    hidden = keras.layers.Dense(5000, name="wide")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    print("exporting", flush=True)
    tfptm.export.saved_model(model, sys.argv[1], "big")
    print("finished", flush=True)
    """
)


def _staging_dirs(model_dir):
    """Hidden staging directories of the model's exports, beside its model directory."""
    return [p for p in model_dir.parent.iterdir() if p.name.startswith(f".{model_dir.name}.") and ".partial-" in p.name]


def _kill_while_writing(base, model_dir, attempts=3):
    """Starts the exporter and SIGKILLs it once a file appears in its staging directory; True if it was killed."""
    for _ in range(attempts):
        process = subprocess.Popen([sys.executable, "-c", EXPORTER, str(base)], stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while process.poll() is None and time.monotonic() < deadline:
            if any(f.is_file() for s in _staging_dirs(model_dir) for f in s.rglob("*")):
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return True
            time.sleep(0.001)
        process.kill()
        process.wait()
    return False


def test_sigkill_mid_export_leaves_previous_versions_and_no_partial_version(tmp_path):
    import keras

    inputs = keras.Input((2000,), name="features")
    small = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(4)(inputs)))
    model_dir = tmp_path / "big"
    first = tfptm.export.saved_model(small, tmp_path, "big")
    x = np.random.default_rng(0).normal(size=(4, 2000)).astype("float32")
    before = tf.saved_model.load(str(first)).signatures["serving_default"](features=x)["probabilities"].numpy()

    assert _kill_while_writing(tmp_path, model_dir), "the exporter finished before it could be killed mid-write"

    # What a polling model server sees: integer-named directories only, and only the complete one.
    assert [p.name for p in model_dir.iterdir() if not p.name.startswith(".")] == ["1"]
    assert tfptm.export.existing_versions(model_dir) == [1]
    stale = _staging_dirs(model_dir)
    assert len(stale) == 1 and stale[0].name.startswith(".big.group.partial-")  # hidden, not a version
    assert any(f.is_file() for f in stale[0].rglob("*")), "killed before anything was written"
    assert _staging_dirs(model_dir)[0].joinpath("big", "2").is_dir()  # the half-written version 2
    after = tf.saved_model.load(str(first)).signatures["serving_default"](features=x)["probabilities"].numpy()
    np.testing.assert_array_equal(after, before)

    second = tfptm.export.saved_model(small, tmp_path, "big")
    assert second == model_dir / "2" and tfptm.export.existing_versions(model_dir) == [1, 2]
    assert (second / "saved_model.pb").is_file()
    assert_no_partial(second)
    assert not stale[0].exists() and _staging_dirs(model_dir) == []  # the killed export's debris is gone
    assert_no_partial(model_dir)
