"""TF Hub backbones (tfptm.backbones.hub) on tiny SavedModels made here; no network is used."""

import hashlib
import io
import shutil
import socket
import tarfile
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfptm
from tfptm.backbones import hub
from tfptm.backbones.hub import HubLayer
from tfptm.errors import TfptmError
from conftest import assert_no_partial

HUB_URL = "https://tfhub.dev/tfptm-tests/tiny-dense/1"


class TinyDense(tf.Module):
    """Features = x @ w + b; `__call__` counts its training-mode calls; a signature returns a dict."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([4, 3], seed=[1, 2]), name="w")
        self.b = tf.Variable(tf.zeros([3]), name="w")  # a duplicate name, as real modules have
        self.count = tf.Variable(0.0, trainable=False, name="count")

    @tf.function
    def __call__(self, x, training=False):
        if training:
            self.count.assign_add(1.0)
        return tf.matmul(x, self.w) + self.b

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def features(self, x):
        return {"features": tf.matmul(x, self.w) + self.b, "double": 2.0 * x}


class MeanPixels(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def __call__(self, images):
        return tf.reduce_mean(images, axis=[1, 2])


@pytest.fixture(scope="module")
def dense_dir(tmp_path_factory):
    module = TinyDense()
    for training in (False, True):
        module.__call__.get_concrete_function(tf.TensorSpec([None, 4], tf.float32, name="x"), training=training)
    path = tmp_path_factory.mktemp("hub") / "tiny_dense"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.features})
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr("urllib.request.urlopen", refuse)


def _expected(layer, x):
    return x @ layer.module.w.numpy() + layer.module.b.numpy()


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def test_hub_layer_works_in_sequential_and_functional_models(dense_dir):
    x, _ = _data(4)
    layer = HubLayer(str(dense_dir), name="tiny")
    sequential = keras.Sequential([keras.Input((4,)), layer])
    np.testing.assert_allclose(sequential.predict(x, verbose=0), _expected(layer, x), atol=1e-6)
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(HubLayer(dense_dir)(inputs)))
    assert functional.predict(x, verbose=0).shape == (4, 2)
    paths = [w.path for w in layer.weights]
    assert paths == ["tiny/w", "tiny/w_1", "tiny/count"] and not any(":" in p for p in paths)
    assert [w.path for w in layer.non_trainable_weights] == ["tiny/count"]


def test_every_keras_optimizer_trains_the_module_variables_in_place(dense_dir):
    x, y = _data()
    layer = HubLayer(dense_dir, name="tiny")
    model = keras.Sequential([keras.Input((4,)), layer, keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05), "mse")
    w_before = layer.module.w.numpy().copy()
    history = model.fit(x, y, batch_size=32, epochs=5, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert np.abs(layer.module.w.numpy() - w_before).max() > 1e-3
    assert layer.module.count.numpy() == 5  # trainable and fit: __call__ ran in training mode
    assert any(v.path.endswith("tiny_w_momentum") for v in model.optimizer.variables)
    for optimizer in (keras.optimizers.AdamW(0.01), keras.optimizers.SGD(0.01, momentum=0.9)):
        w_before = layer.module.w.numpy().copy()
        model.compile(optimizer, "mse")
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
        assert np.abs(layer.module.w.numpy() - w_before).max() > 1e-5, type(optimizer).__name__
    np.testing.assert_allclose(layer(x).numpy(), _expected(layer, x), atol=1e-5)


def test_a_frozen_hub_layer_keeps_the_module_fixed(dense_dir):
    x, y = _data()
    layer = HubLayer(dense_dir, trainable=False, name="frozen")
    model = keras.Sequential([keras.Input((4,)), layer, keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05), "mse")
    w_before, head_before = layer.module.w.numpy().copy(), model.layers[-1].kernel.numpy().copy()
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 3
    np.testing.assert_array_equal(layer.module.w.numpy(), w_before)
    assert layer.module.count.numpy() == 0  # frozen: __call__ ran in inference mode
    assert np.abs(model.layers[-1].kernel.numpy() - head_before).max() > 1e-4
    layer.trainable = True  # what tfptm.finetune does between stages
    assert [w.path for w in layer.trainable_weights] == ["frozen/w", "frozen/w_1"]


def test_signature_and_output_key_choose_what_the_layer_returns(dense_dir):
    x, _ = _data(3)
    double = HubLayer(dense_dir, signature="serving_default", output_key="double")
    np.testing.assert_allclose(double(x).numpy(), 2 * x)
    features = HubLayer(dense_dir, signature="serving_default", output_key="features")
    np.testing.assert_allclose(features(x).numpy(), _expected(features, x), atol=1e-6)
    assert set(double.module_input_spec) == {"x"}
    with pytest.raises(TfptmError, match="expected one of: double, features"):
        HubLayer(dense_dir, signature="serving_default")
    with pytest.raises(TfptmError, match="no signature or function 'nope'; expected one of: __call__, serving_default"):
        HubLayer(dense_dir, signature="nope")
    with pytest.raises(TfptmError, match="returns one tensor"):
        HubLayer(dense_dir, output_key="features")


def test_backbone_exports_to_saved_model_and_tflite_with_parity(dense_dir, tmp_path):
    x, _ = _data(64)
    labels = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")
    own_copy = shutil.copytree(dense_dir, tmp_path / "module")
    backbone = tfptm.backbones.get(str(own_copy))
    assert backbone.name == "backbone" and backbone.input.shape == (None, 4)
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3), learning_rate=0.05)
    model.fit(x, labels, epochs=2, verbose=0)
    served = tfptm.export.saved_model(model, tmp_path / "export", "hub")
    lite = tfptm.export.tflite(model, tmp_path / "hub.tflite", quantization="float32")
    shutil.rmtree(own_copy)  # the exports stand alone
    assert tfptm.export.check_saved_model(served, model, x)["ok"]
    assert tfptm.export.check_tflite(lite.path, model, x)["top1_agreement"] >= 0.99


def test_keras_save_round_trip_restores_fine_tuned_module_weights(dense_dir, tmp_path):
    x, y = _data()
    model = keras.Sequential([keras.Input((4,)), HubLayer(dense_dir), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    with pytest.raises(TfptmError, match="safe_mode=False"):
        keras.saving.load_model(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=False)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_free_input_dimensions_need_input_shape(tmp_path):
    tf.saved_model.save(MeanPixels(), str(tmp_path / "pixels"))
    with pytest.raises(TfptmError, match=r"free dimensions; pass input_shape"):
        tfptm.backbones.get(str(tmp_path / "pixels"))
    with pytest.raises(TfptmError, match="does not fit"):
        tfptm.backbones.get(str(tmp_path / "pixels"), input_shape=(8, 8, 1))
    backbone = tfptm.backbones.get(str(tmp_path / "pixels"), input_shape=(8, 8, 3))
    assert backbone.input.shape == (None, 8, 8, 3) and backbone.output.shape == (None, 3)


class TwoInputs(tf.Module):
    """Takes a dict, as TF Hub text encoders do."""

    def __init__(self):
        super().__init__()
        self.scale = tf.Variable(3.0)

    @tf.function(input_signature=[{k: tf.TensorSpec([None, 5], tf.int32) for k in ("ids", "mask")}])
    def __call__(self, inputs):
        return self.scale * tf.cast(inputs["ids"] * inputs["mask"], tf.float32)


def test_dict_inputs_pass_through(tmp_path):
    tf.saved_model.save(TwoInputs(), str(tmp_path / "two"))
    layer = HubLayer(tmp_path / "two")
    inputs = {k: keras.Input((5,), dtype="int32", name=k) for k in ("ids", "mask")}
    model = keras.Model(inputs, layer(inputs))
    ids, mask = np.arange(10, dtype="int32").reshape(2, 5), np.ones((2, 5), "int32")
    np.testing.assert_allclose(model.predict({"ids": ids, "mask": mask}, verbose=0), 3.0 * ids)
    with pytest.raises(TfptmError, match=r"takes 2 inputs \(ids, mask\)"):
        tfptm.backbones.get(str(tmp_path / "two"))


def _tar(path, entries):
    """Writes a .tar.gz of (TarInfo, bytes or None) entries."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_a_tar_gz_is_extracted_once_into_the_cache(dense_dir, tmp_path, cache):
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(dense_dir, arcname="tiny_dense")  # one top directory, as many archives have
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    first = hub.resolve(archive, sha256=digest)
    assert first.parent.parent == cache and (first / "saved_model.pb").is_file()
    assert hub.resolve(str(archive)) == first
    assert_no_partial(cache)
    x, _ = _data(2)
    layer = HubLayer(str(archive))
    np.testing.assert_allclose(layer(x).numpy(), _expected(layer, x), atol=1e-6)
    with pytest.raises(TfptmError, match=f"has sha256 {digest}; expected 00ff"):
        hub.resolve(archive, sha256="00ff" * 16)


@pytest.mark.parametrize("attack", ["dotdot", "absolute", "symlink", "hardlink", "through_link"])
def test_unsafe_archives_are_refused_and_write_nothing(tmp_path, cache, attack):
    victim = tmp_path / "victim"
    victim.mkdir()
    ok_file = (tarfile.TarInfo("saved_model.pb"), b"x")
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../victim"
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, str(victim / "target")
    inside = tarfile.TarInfo("inside")
    inside.type, inside.linkname = tarfile.SYMTYPE, "."
    entries = {
        "dotdot": [ok_file, (tarfile.TarInfo("../../victim/evil"), b"evil")],
        "absolute": [ok_file, (tarfile.TarInfo(str(victim / "evil")), b"evil")],
        "symlink": [ok_file, (link, None), (tarfile.TarInfo("link/evil"), b"evil")],
        "hardlink": [ok_file, (hard, None)],
        "through_link": [ok_file, (inside, None), (tarfile.TarInfo("inside/evil"), b"evil")],
    }[attack]
    archive = _tar(tmp_path / "bad.tar.gz", entries)
    with pytest.raises(TfptmError, match="Refusing to extract .*bad.tar.gz"):
        hub.resolve(archive)
    assert list(victim.iterdir()) == []
    assert not cache.exists() or list(cache.iterdir()) == []


@pytest.mark.parametrize(
    "handle_of, message",
    [
        (lambda tmp: str(tmp / "missing"), "does not exist"),
        (lambda tmp: str(tmp), "is not a SavedModel"),
        (lambda tmp: "file://" + str(tmp / "missing"), "does not exist"),
        (lambda tmp: "http://tfhub.dev/google/model/1", "Unsupported hub handle"),
        (lambda tmp: "gs://bucket/model", "Unsupported hub handle"),
        (lambda tmp: str(tmp / "broken.tar.gz"), "Cannot extract .*broken.tar.gz"),
    ],
)
def test_bad_handles_give_one_clear_error(tmp_path, cache, handle_of, message):
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "broken.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(TfptmError, match=message):
        HubLayer(handle_of(tmp_path))


def test_sha256_only_pins_archives(dense_dir):
    with pytest.raises(TfptmError, match="is not one"):
        hub.resolve(dense_dir, sha256="ab" * 32)
    with pytest.raises(TfptmError, match="is a URL"):
        hub.resolve(HUB_URL, sha256="ab" * 32)


def test_an_uncached_hub_url_fails_fast_offline(cache, no_network, monkeypatch):
    monkeypatch.delenv("TFPTM_OFFLINE")  # online, but the hub is unreachable (no socket opens)
    start = time.monotonic()
    with pytest.raises(TfptmError, match=r"Cannot download .*offline.*TFHUB_CACHE_DIR.*local directory") as error:
        tfptm.backbones.get(HUB_URL)
    assert time.monotonic() - start < 5
    assert "\n" not in str(error.value)


def test_an_uncached_hub_url_fails_at_once_in_offline_mode(cache, no_network):
    start = time.monotonic()  # TFPTM_OFFLINE=1 (tests/conftest.py): no probe, no connection attempted
    with pytest.raises(TfptmError, match="not in the cache .*TFHUB_CACHE_DIR.*TFPTM_OFFLINE=1") as error:
        hub.resolve(HUB_URL)
    assert time.monotonic() - start < 1 and "\n" not in str(error.value)


def test_a_cached_hub_url_loads_without_network(dense_dir, cache, no_network):
    for url in (HUB_URL, "https://www.kaggle.com/models/tfptm/tiny-dense/tensorFlow2/default/1"):
        shutil.copytree(dense_dir, cache / hashlib.sha1(url.encode("utf8")).hexdigest())
        backbone = tfptm.backbones.get(url)
        assert backbone.output.shape == (None, 3)


def test_matches_claims_hub_handles_only(dense_dir, tmp_path):
    preset = shutil.copytree(dense_dir, tmp_path / "preset")
    (preset / "config.json").write_text("{}")
    (tmp_path / "model.keras").write_bytes(b"")
    claimed = [
        HUB_URL,
        "https://www.kaggle.com/models/google/mobilenet-v2/tensorFlow2/100-224-feature-vector/1",
        "file:///models/mine",
        "file:///models/archive.tgz",
        str(dense_dir),
        "weights.tar.gz",
        "weights.tgz",
    ]
    declined = [
        "https://www.kaggle.com/datasets/some/data",
        "https://example.com/model",
        str(tmp_path / "model.keras"),
        "file://" + str(tmp_path / "model.keras"),
        "file://" + str(preset),
        str(preset),
        str(tmp_path),
        "vgg_cnn",
    ]
    assert [h for h in claimed if not hub.matches(h)] == []
    assert [h for h in declined if hub.matches(h)] == []
