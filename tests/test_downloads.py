"""Real downloads with no internet: huggingface_hub and keras.utils.get_file fetch from a hub on 127.0.0.1.

Nothing here may reach another address: `guard_loopback` fails any other
connection or name lookup, HF_ENDPOINT points at the loopback hub, and the
subprocess run gets the same endpoint in its environment.
"""

import csv
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import tfptm
from loopback_hub import COMMIT, LoopbackHub, guard_loopback, point_huggingface_hub_at
from tfptm import downloads
from tfptm.backbones import applications, presets

MINILM = "hf://sentence-transformers/all-MiniLM-L6-v2"
REPO = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def hub(monkeypatch):
    guard_loopback(monkeypatch)
    server = LoopbackHub()
    yield server
    server.close()


def _blobs_and_partials(cache):
    found = []
    for root, _, files in os.walk(cache):
        found += [os.path.join(root, f) for f in files if f.endswith(".incomplete") or ".partial-" in root]
    return found


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory, minilm_dir):
    """A Hugging Face cache holding MiniLM's backbone files, downloaded once through the loopback hub."""
    cache = tmp_path_factory.mktemp("hf_cache")
    with pytest.MonkeyPatch.context() as monkeypatch:
        guard_loopback(monkeypatch)
        server = LoopbackHub()
        server.repos[REPO] = minilm_dir
        point_huggingface_hub_at(monkeypatch, server.url, cache)
        try:
            backbone = tfptm.backbones.get(MINILM)
            first = list(server.log)
            server.log.clear()
            again = tfptm.backbones.get(MINILM)
            second = list(server.log)
        finally:
            server.close()
    return cache, first, second, backbone, again


def test_hf_handle_downloads_through_huggingface_hub(hf_cache, minilm_dir):
    cache, first, _, backbone, _ = hf_cache
    assert ("GET", f"/{REPO}/resolve/main/model.safetensors") in first
    assert backbone.name == "backbone" and backbone.count_params() == 22_565_376
    blobs = [f for _, _, files in os.walk(cache / f"models--{REPO.replace('/', '--')}" / "blobs") for f in files]
    assert len(blobs) >= 2 and _blobs_and_partials(cache) == []
    reference = tfptm.backbones.get(minilm_dir)
    tokens = {"token_ids": np.array([[101, 7592, 2088, 102]]), "padding_mask": np.ones((1, 4), bool),
              "segment_ids": np.zeros((1, 4), int)}
    np.testing.assert_allclose(backbone(tokens), reference(tokens), rtol=1e-5, atol=1e-5)


def test_second_call_reuses_the_cache_without_downloading(hf_cache):
    _, _, second, _, again = hf_cache
    assert [request for request in second if request[0] == "GET"] == []  # huggingface_hub revalidates with HEAD only
    assert again.count_params() == 22_565_376


def test_offline_loads_the_cached_files_with_no_request(hf_cache, hub, monkeypatch):
    cache = hf_cache[0]
    point_huggingface_hub_at(monkeypatch, hub.url, cache)
    monkeypatch.setenv("TFPTM_OFFLINE", "1")
    backbone, preprocessor = presets.load_preset(MINILM, sequence_length=8)  # tokenizer files were never downloaded
    assert backbone.count_params() == 22_565_376 and preprocessor is None
    assert hub.log == []


@pytest.mark.parametrize("switch", ["TFPTM_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_with_an_empty_cache_fails_at_once_in_one_line(hub, monkeypatch, tmp_path, switch):
    point_huggingface_hub_at(monkeypatch, hub.url, tmp_path)
    monkeypatch.setenv(switch, "1")
    if switch == "HF_HUB_OFFLINE":
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    started = time.monotonic()
    with pytest.raises(tfptm.TfptmError) as error:
        tfptm.backbones.get(MINILM)
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert "\n" not in message and REPO in message and str(tmp_path) in message and f"{switch}=1" in message
    assert "snapshot_download" in message and hub.log == []


def test_a_missing_repository_is_one_line(hub, monkeypatch, tmp_path):
    point_huggingface_hub_at(monkeypatch, hub.url, tmp_path)
    with pytest.raises(tfptm.TfptmError, match=r"^Cannot download Hugging Face model 'nobody/nothing' into ") as error:
        tfptm.backbones.get("hf://nobody/nothing")
    assert "\n" not in str(error.value) and hub.log[0] == ("HEAD", "/nobody/nothing/resolve/main/config.json")


def test_a_truncated_download_fails_and_leaves_no_partial_file(hub, monkeypatch, tmp_path, minilm_dir):
    hub.repos[REPO] = minilm_dir
    hub.truncate.add("model.safetensors")
    point_huggingface_hub_at(monkeypatch, hub.url, tmp_path)
    with pytest.raises(tfptm.TfptmError) as error:
        tfptm.backbones.get(MINILM)
    assert "\n" not in str(error.value) and MINILM in str(error.value)
    # Newer huggingface_hub removes the partial file; older ones (0.30) keep it as blobs/<etag>.incomplete, which only
    # the next download of that file reads, to resume. Nothing is left under a name that loads.
    for left in _blobs_and_partials(tmp_path):
        assert re.fullmatch(r"[0-9a-f]{64}\.incomplete", os.path.basename(left)), left
        assert os.path.basename(os.path.dirname(left)) == "blobs", left
    assert downloads.cached_dir(MINILM) is not None  # config.json arrived whole; the weights did not
    assert not any(f == "model.safetensors" for _, _, files in os.walk(tmp_path) for f in files)
    hub.serve_whole()  # the next try downloads (or resumes) the weights, and they are the hub's, byte for byte
    assert tfptm.backbones.get(MINILM).count_params() == 22_565_376 and _blobs_and_partials(tmp_path) == []
    weights = tmp_path / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT / "model.safetensors"
    with open(os.path.join(minilm_dir, "model.safetensors"), "rb") as f:
        assert weights.read_bytes() == f.read()


def test_an_unreachable_hub_is_one_line_within_seconds(hub, monkeypatch, tmp_path):
    hub.close()  # nothing listens there any more: connection refused
    point_huggingface_hub_at(monkeypatch, hub.url, tmp_path)
    started = time.monotonic()
    with pytest.raises(tfptm.TfptmError, match="^Cannot download Hugging Face model") as error:
        tfptm.backbones.get(MINILM)
    assert time.monotonic() - started < 30 and "\n" not in str(error.value)


# keras.applications: weights="imagenet" through keras.utils.get_file, from a loopback mirror.

SHAPE = (32, 32, 3)
NAME = "mobilenet_v3_small"


@pytest.fixture
def keras_mirror(hub, monkeypatch, tmp_path):
    """A loopback mirror serving a stand-in for Keras's MobileNetV3-Small file; the spec's MD5 is that file's."""
    import dataclasses

    from test_backbones_applications import _save_like_keras_imagenet_file

    (tmp_path / "keras").mkdir()  # Keras falls back to /tmp/.keras when its home is not writable
    monkeypatch.setattr(applications, "keras_home", lambda: str(tmp_path / "keras"))
    monkeypatch.setenv(applications.WEIGHTS_URL_ENV, hub.url + "/files")
    monkeypatch.delenv("TFPTM_OFFLINE", raising=False)
    source = tfptm.backbones.get(NAME, input_shape=SHAPE)
    file = tmp_path / "weights.h5"
    _save_like_keras_imagenet_file(source, str(file))
    spec = applications.SPECS[NAME]
    monkeypatch.setitem(applications.SPECS, NAME, dataclasses.replace(spec, weights_dir="", weights_md5=applications._md5(file)))
    name = os.path.basename(applications.imagenet_weights_path(NAME))
    hub.files[name] = file.read_bytes()
    return hub, source, name, tmp_path / "keras" / "models"


def test_imagenet_downloads_through_keras_then_reuses_the_cache(keras_mirror):
    hub, source, name, cache = keras_mirror
    pixels = np.random.default_rng(0).uniform(0, 255, (2, *SHAPE)).astype("float32")
    loaded = tfptm.backbones.get(NAME, input_shape=SHAPE, weights="imagenet")
    assert hub.gets() == [f"/files/{name}"] and os.listdir(cache) == [name]
    np.testing.assert_allclose(loaded(pixels), source(pixels), rtol=1e-5, atol=1e-5)
    tfptm.backbones.get(NAME, input_shape=SHAPE, weights="imagenet")
    assert len(hub.log) == 1  # the second call made no request


@pytest.mark.parametrize("fault", ["404", "truncated", "hash mismatch"])
def test_a_bad_imagenet_download_is_one_line_and_leaves_nothing(keras_mirror, fault):
    hub, _, name, cache = keras_mirror
    if fault == "404":
        del hub.files[name]
    elif fault == "truncated":
        hub.truncate.add(name)
    else:
        data = hub.files[name]
        hub.files[name] = data[:100] + bytes(b ^ 0xFF for b in data[100:104]) + data[104:]
    with pytest.raises(tfptm.TfptmError, match=f"^Cannot download {NAME}: ImageNet weights") as error:
        tfptm.backbones.get(NAME, input_shape=SHAPE, weights="imagenet")
    assert "\n" not in str(error.value) and str(cache) in str(error.value)
    assert os.listdir(cache) == []  # neither the file nor a staging directory


# The whole CLI: `tfptm train text_minilm` downloads MiniLM from the loopback hub, then trains.


def _reviews(path, count=40):
    texts, labels = tfptm.datasets.load_reviews("train", count=count, seed=0)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([text, ["neg", "pos"][label]] for text, label in zip(texts, labels))


def _tfptm(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "tfptm", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)


def test_cli_train_text_minilm_downloads_offline_fails_fast(tmp_path, minilm_dir):
    server = LoopbackHub()  # in this process; the CLI subprocess reaches it through HF_ENDPOINT only
    server.repos[REPO] = minilm_dir
    try:
        _reviews(tmp_path / "reviews.csv")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TFPTM_", "TRANSFORMERS_"))}
        env.update(HF_ENDPOINT=server.url, HF_HUB_CACHE=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
                   KAGGLEHUB_CACHE=str(tmp_path / "kaggle"), TF_CPP_MIN_LOG_LEVEL="3")
        sets = ["--set", f"data.path={tmp_path / 'reviews.csv'}", "--set", "finetune.epochs=1", "--set", "data.max_length=16",
                "--set", "data.batch_size=16", "--set", "export.saved_model=false"]
        started = time.monotonic()
        offline = _tfptm(["train", "text_minilm", *sets, "--offline", "--out", "offline-run"], env, tmp_path)
        elapsed = time.monotonic() - started
        assert offline.returncode == 2 and server.log == [], offline.stderr[-2000:]
        lines = offline.stderr.strip().splitlines()
        assert len(lines) == 1 and REPO in lines[0] and str(tmp_path / "hf") in lines[0], offline.stderr
        assert elapsed < 5, elapsed
        run = _tfptm(["train", "text_minilm", *sets, "--quiet", "--out", "run"], env, tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        assert (tmp_path / "run" / "model.keras").is_file()
        assert ("GET", f"/{REPO}/resolve/main/model.safetensors") in server.log
        assert ("GET", f"/{REPO}/resolve/main/vocab.txt") in server.log
    finally:
        server.close()
