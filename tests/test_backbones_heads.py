import keras
import numpy as np
import pytest

import tfptm
from tfptm.errors import TfptmError


@pytest.mark.parametrize("name", ["vgg_cnn", "resnet_cnn"])
def test_local_cnns_build_and_run(name):
    backbone = tfptm.backbones.get(name, input_shape=(16, 16, 3), filters=(8, 16))
    assert isinstance(backbone, keras.Model) and backbone.name == "backbone"
    features = backbone(np.random.rand(2, 16, 16, 3).astype("float32") * 255)
    assert features.shape[0] == 2 and features.shape[-1] == 16
    assert np.all(np.isfinite(features))


def test_unknown_backbone_names_the_choices():
    with pytest.raises(TfptmError, match=r"Unknown backbone 'vgg_cn'.*Did you mean vgg_cnn"):
        tfptm.backbones.get("vgg_cn")


def test_blocks_follow_the_backbone_structure():
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(8, 16, 32))
    groups = tfptm.backbones.blocks(backbone)
    assert [name for name, _ in groups] == ["stem", "block1", "block2", "block3"]
    assert {layer.name for layer in groups[0][1]} == {"pixels", "preprocess"}
    assert all(layer.name.startswith("block3_") for layer in groups[3][1])


def test_preprocessing_lives_inside_the_backbone():
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,), input_scale=1 / 16)
    assert backbone.get_layer("preprocess").scale == pytest.approx(1 / 16)


@pytest.mark.parametrize(
    "task, num_classes, units, activation, loss",
    [
        ("multiclass", 4, 4, "softmax", keras.losses.SparseCategoricalCrossentropy),
        ("binary", None, 1, "sigmoid", keras.losses.BinaryCrossentropy),
        ("multilabel", 3, 3, "sigmoid", keras.losses.BinaryCrossentropy),
        ("regression", None, 1, "linear", keras.losses.MeanSquaredError),
    ],
)
def test_head_output_activation_and_loss_follow_the_task(task, num_classes, units, activation, loss):
    head = tfptm.Head(task, num_classes=num_classes, hidden_units=8, dropout=0.1)
    backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
    model = tfptm.build_model(backbone, head)
    assert model.output.shape == (None, units)
    assert model.layers[-1].get_config()["activation"] == activation
    assert isinstance(model.loss, loss) and not getattr(model.loss, "from_logits", False)
    assert model.get_layer("backbone") is backbone


def test_head_output_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(4,))
        model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
        assert model.get_layer("head_logits").compute_dtype == "float32"
        assert model(np.zeros((1, 8, 8, 1))).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "ranking"}, "unknown task 'ranking'"),
        ({"task": "multiclass", "num_classes": 1}, "needs num_classes >= 2"),
        ({"task": "binary", "pooling": "mean"}, "unknown pooling 'mean'"),
        ({"task": "binary", "dropout": 1.5}, "dropout is 1.5"),
    ],
)
def test_bad_heads_are_rejected(kwargs, message):
    with pytest.raises(TfptmError, match=message):
        tfptm.Head(**kwargs)


def test_build_model_rejects_a_non_model():
    with pytest.raises(TfptmError, match="backbone must be a keras.Model; got str"):
        tfptm.build_model("vgg_cnn", tfptm.Head("binary"))


def test_handles_no_source_claims_get_a_specific_error(tmp_path):
    with pytest.raises(TfptmError, match=r"Backbone path '/no/such/dir' does not exist"):
        tfptm.backbones.get("/no/such/dir")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(TfptmError, match=r"No backbone source recognizes .*; expected a \.keras file"):
        tfptm.backbones.get(str(tmp_path))
    for handle in ("gs://bucket/model", "s3://bucket/model.tar.gz"):  # only https, file and plain paths
        with pytest.raises(TfptmError, match=r"Unsupported (handle scheme|hub handle)"):
            tfptm.backbones.get(handle)


IMAGE_BACKBONES = tfptm.backbones.available("keras.applications") + ["resnet_cnn", "vgg_cnn"]


@pytest.mark.parametrize("name", IMAGE_BACKBONES)
def test_every_registered_image_backbone_builds_and_runs_forward(name):
    backbone = tfptm.backbones.get(name, input_shape=(32, 32, 3))
    model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=3))
    probabilities = model.predict(np.random.rand(2, 32, 32, 3).astype("float32") * 255, verbose=0)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert len(tfptm.backbones.blocks(backbone)) >= 2
