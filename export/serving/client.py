"""Ask a running TF Serving for predictions over gRPC (port 8500) or REST (port 8501).

    python export/serving/client.py digits --image digit.png             # gRPC, signature image_bytes
    python export/serving/client.py reviews --text "a great film"        # gRPC, signature raw_text
    python export/serving/client.py digits --image digit.png --rest      # the same over REST

gRPC needs `pip install 'tfptm[serving]'` (tensorflow-serving-api). Start the
server with the command `tfptm.export.serve_command(base, name)` prints.
"""

import argparse
import json
import sys
import urllib.request

import numpy as np
import tensorflow as tf

from tfptm.export import grpc_request, rest_request


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the model name TF Serving serves (MODEL_NAME or a name in models.config)")
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument("--image", nargs="+", help="JPEG/PNG files, sent to the image_bytes signature")
    inputs.add_argument("--text", nargs="+", help="texts, sent to the raw_text signature")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--rest", action="store_true", help="use REST (port 8501) instead of gRPC (port 8500)")
    parser.add_argument("--version", type=int, default=None, help="a model version; default: the latest")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.image:
        signature, name = "image_bytes", "image_bytes"
        values = np.array([open(path, "rb").read() for path in args.image], dtype=object)
    else:
        signature, name, values = "raw_text", "text", np.array(args.text, dtype=object)
    if args.rest:
        version = f"/versions/{args.version}" if args.version else ""
        url = f"http://{args.host}:8501/v1/models/{args.model}{version}:predict"
        body = json.dumps(rest_request({name: values}, signature)).encode()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            print(json.dumps(json.load(response)["predictions"], indent=2))
        return 0
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"{args.host}:8500"))
    result = stub.Predict(grpc_request(args.model, {name: values}, signature, args.version), args.timeout)
    names = tf.make_ndarray(result.outputs["class_names"])
    probabilities = tf.make_ndarray(result.outputs["probabilities"])
    for label, row in zip(names, probabilities):
        print(label.decode(), float(row.max()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
