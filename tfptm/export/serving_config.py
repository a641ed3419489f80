"""What running TF Serving over an export base needs: `models.config`, the server command, request bodies.

None of this needs a model server; `tensorflow-serving-api` (the optional
extra `serving`) is needed only for `grpc_request`.
"""

import base64
import json
import shlex
from pathlib import Path

import numpy as np

from tfptm.errors import TfptmError
from tfptm.files import write_text_atomic

SERVING_IMAGE = "tensorflow/serving"
REST_PORT, GRPC_PORT = 8501, 8500
CONTAINER_BASE = "/models"


def models_config(models, base_path=CONTAINER_BASE, versions=None):
    """A TF Serving `--model_config_file` serving several models, in protobuf text format.

    Args:
        models: model names (each a `<base>/<name>/` directory of versions).
        base_path: where the export base is as the server sees it (inside
            the container: `/models`).
        versions: `None` serves each model's latest version (TF Serving's
            default policy); `"all"` serves every version; a dict
            `{name: [1, 2]}` pins specific versions per model.

    Example:
    >>> print(models_config(["digits"], versions={"digits": [1, 2]}))
    model_config_list {
      config {
        name: "digits"
        base_path: "/models/digits"
        model_platform: "tensorflow"
        model_version_policy { specific { versions: 1 versions: 2 } }
      }
    }
    <BLANKLINE>
    """
    models = list(models)
    if not models or any(not isinstance(m, str) or not m or "/" in m or '"' in m for m in models):
        raise TfptmError(f"models_config: expected a non-empty list of plain model names; got {models!r}")
    if isinstance(versions, dict) and set(versions) - set(models):
        raise TfptmError(f"models_config: versions given for unknown models {sorted(set(versions) - set(models))}")
    if versions not in (None, "all") and not isinstance(versions, dict):
        raise TfptmError(f"models_config: versions must be None, 'all' or a dict of lists; got {versions!r}")
    lines = ["model_config_list {"]
    for name in models:
        lines += ["  config {", f'    name: "{name}"', f'    base_path: "{base_path.rstrip("/")}/{name}"']
        lines.append('    model_platform: "tensorflow"')
        policy = _policy(name, versions)
        if policy:
            lines.append(f"    model_version_policy {{ {policy} }}")
        lines.append("  }")
    return "\n".join(lines + ["}", ""])


def _policy(name, versions):
    if versions == "all":
        return "all {}"
    pinned = (versions or {}).get(name)
    if pinned is None:
        return None
    if not pinned or not all(isinstance(v, int) and v > 0 for v in pinned):
        raise TfptmError(f"models_config: versions for {name!r} must be positive integers; got {pinned!r}")
    return "specific { " + " ".join(f"versions: {v}" for v in pinned) + " }"


def write_models_config(export_base, models=None, versions=None):
    """Writes `<export_base>/models.config` for `models` (default: every model directory there with a version).

    Example:
    >>> import tempfile, os
    >>> base = tempfile.mkdtemp(); os.makedirs(os.path.join(base, "digits", "1"))
    >>> write_models_config(base).name
    'models.config'
    """
    from tfptm.export.serving import existing_versions

    base = Path(export_base)
    if models is None:
        models = sorted(p.name for p in base.iterdir() if p.is_dir() and existing_versions(p)) if base.is_dir() else []
        if not models:
            raise TfptmError(f"No exported models under {str(base)!r}; expected <name>/<version>/saved_model.pb")
    return write_text_atomic(base / "models.config", models_config(models, versions=versions))


def serve_command(export_base, model_name=None):
    """The `docker run` command for the official `tensorflow/serving` image over `export_base`.

    One model by name, or (without `model_name`) every model in
    `<export_base>/models.config`. REST answers on 8501, gRPC on 8500.

    Example:
    >>> serve_command("/srv/export", "digits")  # doctest: +NORMALIZE_WHITESPACE
    'docker run --rm -p 8501:8501 -p 8500:8500 -v /srv/export:/models -e MODEL_NAME=digits tensorflow/serving'
    """
    base = shlex.quote(str(Path(export_base).resolve()))
    ports = f"-p {REST_PORT}:{REST_PORT} -p {GRPC_PORT}:{GRPC_PORT}"
    if model_name:
        return f"docker run --rm {ports} -v {base}:{CONTAINER_BASE} -e MODEL_NAME={shlex.quote(model_name)} {SERVING_IMAGE}"
    return (
        f"docker run --rm {ports} -v {base}:{CONTAINER_BASE} {SERVING_IMAGE} "
        f"--model_config_file={CONTAINER_BASE}/models.config --model_config_file_poll_wait_seconds=60"
    )


def rest_request(inputs, signature_name="serving_default"):
    """The JSON body of a REST `POST /v1/models/NAME:predict` (row format, `instances`).

    `inputs` is one array (batch first) or a dict of named arrays. Byte
    strings (encoded images; their input name ends in `_bytes`, as TF Serving
    requires) are sent base64-encoded as `{"b64": ...}`.

    Example:
    >>> rest_request({"text": ["a great film"]}, "raw_text")
    {'signature_name': 'raw_text', 'instances': [{'text': 'a great film'}]}
    """
    if isinstance(inputs, dict):
        columns = {name: [_json_value(v) for v in _batch(value, name)] for name, value in inputs.items()}
        sizes = {len(v) for v in columns.values()}
        if len(sizes) != 1:
            raise TfptmError(f"rest_request: inputs have different batch sizes {sorted(sizes)}")
        instances = [{name: column[i] for name, column in columns.items()} for i in range(sizes.pop())]
    else:
        instances = [_json_value(v) for v in _batch(inputs, "inputs")]
    body = {"signature_name": signature_name, "instances": instances}
    json.dumps(body)  # fails here, not at the server, if something is not JSON-ready
    return body


def _batch(value, name):
    value = np.asarray(value)
    if value.ndim == 0:
        raise TfptmError(f"rest_request: input {name!r} has no batch axis; expected one row per example")
    return value


def _json_value(value):
    if isinstance(value, (bytes, np.bytes_)):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value] if value.dtype == object or value.dtype.kind in "SU" else value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def grpc_request(model_name, inputs, signature_name="serving_default", version=None):
    """A `tensorflow_serving.apis.predict_pb2.PredictRequest` for `inputs` (a dict of named arrays).

    Needs `pip install tensorflow-serving-api` (tfptm's extra `serving`).
    Send it with `PredictionServiceStub(grpc.insecure_channel("host:8500")).Predict(request, timeout)`;
    `export/client.py` does.
    """
    try:
        from tensorflow_serving.apis import predict_pb2
    except ImportError:
        raise TfptmError("grpc_request needs tensorflow-serving-api: pip install 'tfptm[serving]'") from None
    import tensorflow as tf

    if not isinstance(inputs, dict) or not inputs:
        raise TfptmError("grpc_request: inputs must be a non-empty dict of input name -> array")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request
