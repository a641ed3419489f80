"""TF Serving assets: models.config, the server command, REST and gRPC request bodies (no server needed)."""

import base64
import json

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

import tfptm
from tfptm.errors import TfptmError

model_server_config_pb2 = pytest.importorskip(
    "tensorflow_serving.config.model_server_config_pb2", reason="tensorflow-serving-api (extra 'serving') not installed"
)


def test_models_config_parses_as_tf_servings_own_proto(tmp_path):
    for name in ("digits", "reviews"):
        (tmp_path / name / "1").mkdir(parents=True)
    (tmp_path / ".scratch").mkdir()
    path = tfptm.export.write_models_config(tmp_path, versions={"reviews": [1, 3]})
    config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    models = {c.name: c for c in config.model_config_list.config}
    assert sorted(models) == ["digits", "reviews"]
    assert models["digits"].base_path == "/models/digits" and models["digits"].model_platform == "tensorflow"
    assert not models["digits"].HasField("model_version_policy")
    assert list(models["reviews"].model_version_policy.specific.versions) == [1, 3]
    every = text_format.Parse(tfptm.export.models_config(["a"], versions="all"), model_server_config_pb2.ModelServerConfig())
    assert every.model_config_list.config[0].model_version_policy.HasField("all")


@pytest.mark.parametrize(
    "models, versions, message",
    [([], None, "non-empty list"), (["a/b"], None, "plain model names"), (["a"], {"b": [1]}, "unknown models"),
     (["a"], {"a": [0]}, "positive integers"), (["a"], "latest", "versions must be")],
)
def test_bad_models_config_requests(models, versions, message):
    with pytest.raises(TfptmError, match=message):
        tfptm.export.models_config(models, versions=versions)


def test_write_models_config_needs_exported_models(tmp_path):
    with pytest.raises(TfptmError, match="No exported models"):
        tfptm.export.write_models_config(tmp_path)


def test_serve_commands_mount_the_export_base(tmp_path):
    one = tfptm.export.serve_command(tmp_path, "digits")
    assert f"-v {tmp_path.resolve()}:/models" in one and "MODEL_NAME=digits" in one and one.endswith("tensorflow/serving")
    assert "--model_config_file=/models/models.config" in tfptm.export.serve_command(tmp_path)


def test_rest_bodies_from_real_inputs(digit_batch):
    x, _ = digit_batch
    body = json.loads(json.dumps(tfptm.export.rest_request({"pixels": x[:2]})))
    assert body["signature_name"] == "serving_default" and len(body["instances"]) == 2
    np.testing.assert_array_equal(np.array(body["instances"][1]["pixels"]), x[1])
    png = tf.io.encode_png(tf.constant(x[0].astype(np.uint8))).numpy()
    images = tfptm.export.rest_request({"image_bytes": np.array([png], dtype=object)}, "image_bytes")
    assert base64.b64decode(images["instances"][0]["image_bytes"]["b64"]) == png
    text = json.loads(json.dumps(tfptm.export.rest_request({"text": ["a great film", "dull"]}, "raw_text")))
    assert text == {"signature_name": "raw_text", "instances": [{"text": "a great film"}, {"text": "dull"}]}
    with pytest.raises(TfptmError, match="different batch sizes"):
        tfptm.export.rest_request({"a": [1, 2], "b": [1]})


def test_grpc_request_round_trips_through_tensor_protos(digit_batch):
    from tensorflow_serving.apis import predict_pb2

    x, _ = digit_batch
    tokens = np.array([[101, 2307, 102, 0]], dtype=np.int32)
    request = tfptm.export.grpc_request("digits", {"pixels": x[:3], "token_ids": tokens}, "pixels", version=2)
    assert isinstance(request, predict_pb2.PredictRequest)
    assert (request.model_spec.name, request.model_spec.signature_name, request.model_spec.version.value) == (
        "digits", "pixels", 2
    )
    np.testing.assert_array_equal(tf.make_ndarray(request.inputs["pixels"]), x[:3])
    assert tf.make_ndarray(request.inputs["token_ids"]).dtype == np.int32
    again = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    np.testing.assert_array_equal(tf.make_ndarray(again.inputs["token_ids"]), tokens)
