"""Tutorial 8: exporting for TF Serving, and calling the export the way a server would.

TF Serving watches a base directory laid out as `<base>/<model_name>/<version>/`
and loads the highest version it finds. Two consequences a newcomer meets:
- a half-written version must never be visible, or the server loads a broken
  model: tfptm writes each version in a hidden staging directory and renames it
  into place only when complete;
- clients do not run your Python: whatever preprocessing the model needs must
  be inside the exported graph. The digits backbone rescales pixels itself,
  and the `image_bytes` signature decodes and resizes PNG/JPEG files in the
  graph, so a client sends only file bytes.

No model server can be installed here, so this tutorial does what can be done
without one: it exports, loads the SavedModel back with `tf.saved_model.load`
and calls every signature, writes `models.config`, and prints the exact
`docker run` command and a REST request body that a real server would take.

Run: python tutorials/08_export_for_tf_serving.py   (TFPTM_TUTORIAL_FAST=1 for a smoke run)
"""

import json
import os
import tempfile

import numpy as np
import tensorflow as tf

import tfptm

FAST = os.environ.get("TFPTM_TUTORIAL_FAST") == "1"
EPOCHS = 4 if FAST else 20
base = tempfile.mkdtemp() if FAST else "export"

images, labels = tfptm.datasets.load_digits()
(x_train, y_train), (x_test, y_test) = tfptm.data.train_test_split(images, labels, test_fraction=0.25, seed=0)
backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(16, 32), input_scale=1 / 16)
model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=10, pooling="flatten"))
tfptm.finetune(model, tfptm.data.from_arrays(x_train, y_train, seed=0), tfptm.training.full(EPOCHS, 3e-3), verbose=0)
report = tfptm.evaluate(model, x_test, y_test)
print(f"accuracy on {report['num_examples']} held-out images: {report['accuracy']:.3f}")

# Digits pixels run 0..16; decoded PNGs run 0..255, so image_bytes scales them by 16/255.
version_dir = tfptm.export.saved_model(model, base, "digits", class_names=[str(d) for d in range(10)],
                                       image_scale=16 / 255)
print("signatures (as saved_model_cli show --all lists them):", sorted(tfptm.export.describe_saved_model(version_dir)["signatures"]))
print("SavedModel parity:", tfptm.export.check_saved_model(version_dir, model, x_test))

# A client's view: PNG bytes in, labels out, through the image_bytes signature.
pngs = [tf.io.encode_png(np.round(x * 255 / 16).astype("uint8")).numpy() for x in x_test[:4]]
served = tf.saved_model.load(str(version_dir)).signatures["image_bytes"](image_bytes=tf.constant(pngs))
print("image_bytes ->", [name.decode() for name in served["class_names"].numpy()], "true:", y_test[:4].tolist())

# What to give the real server.
config = tfptm.export.write_models_config(base)
print(f"models.config at {config}:\n{open(config).read()}")
print("start TF Serving with:", tfptm.export.serve_command(base, "digits"))
body = tfptm.export.rest_request({"image_bytes": np.array(pngs[:1], dtype=object)}, "image_bytes")
print("POST http://localhost:8501/v1/models/digits:predict with", json.dumps(body)[:120], "...")
