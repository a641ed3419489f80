"""Tutorial 7: fine-tuning a TF Hub module in Keras 3.

TF Hub modules are TF2 SavedModels. The usual way to use one,
`hub.KerasLayer`, is a tf_keras layer that Keras 3 models refuse, and
`keras.layers.TFSMLayer(trainable=True)` fails at the first optimizer step.
tfptm's `HubLayer` wraps the module's own variables as Keras variables, so
`model.fit` updates exactly the weights the module computes with, and the
fine-tuned model exports like any other.

No network is reachable here, so this tutorial first plays the publisher:
it pre-trains a feature extractor on digits 0-4 and publishes it as a
SavedModel packed in a `.tar.gz`, the form tfhub.dev and Kaggle serve. Then,
as a user, it loads that archive by path, pinned by its sha256 (a module that
changed under you is refused), and fine-tunes it on digits 5-9. With a real
handle you would write `tfptm.backbones.get("https://tfhub.dev/...",
input_shape=(224, 224, 3))`; downloads land in `TFHUB_CACHE_DIR`.

Run: python tutorials/07_tf_hub_finetuning.py   (TFPTM_TUTORIAL_FAST=1 for a smoke run)
"""

import hashlib
import os
import tarfile
import tempfile

import tfptm

FAST = os.environ.get("TFPTM_TUTORIAL_FAST") == "1"
EPOCHS = 2 if FAST else 30
work = tempfile.mkdtemp()

images, labels = tfptm.datasets.load_digits()
x_source, y_source = tfptm.data.select_classes(images, labels, [0, 1, 2, 3, 4])
x_target, y_target = tfptm.data.select_classes(images, labels, [5, 6, 7, 8, 9])
(x_few, y_few), (x_test, y_test) = tfptm.data.sample_per_class(x_target, y_target, 10, seed=0)

# --- The publisher: pre-train, then export the backbone alone as a SavedModel archive. ---
source = tfptm.build_model(
    tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(32, 64), input_scale=1 / 16),
    tfptm.Head("multiclass", num_classes=5, pooling="flatten"),
)
tfptm.finetune(source, tfptm.data.from_arrays(x_source, y_source, seed=0), tfptm.training.full(EPOCHS, 1e-3), verbose=0)
module_dir = os.path.join(work, "digits_features")
tfptm.backbone_of(source).export(module_dir, verbose=False)  # a TF2 SavedModel with a `serve` function
archive = os.path.join(work, "digits_features.tar.gz")
with tarfile.open(archive, "w:gz") as tar:
    tar.add(module_dir, arcname=".")
with open(archive, "rb") as f:
    sha256 = hashlib.sha256(f.read()).hexdigest()

# --- The user: load the module by handle, put a head on it, fine-tune everything. ---
backbone = tfptm.backbones.get(archive, sha256=sha256, signature="serve")
model = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=5, dropout=0.2))
few_shot = tfptm.data.from_arrays(x_few, y_few, batch_size=16, seed=0)
module_weights = [w.numpy().copy() for w in backbone.trainable_weights]
tfptm.finetune(model, few_shot, tfptm.training.two_stage(head_epochs=EPOCHS, finetune_epochs=EPOCHS), verbose=0)
changed = sum(int((w.numpy() != before).any()) for w, before in zip(backbone.trainable_weights, module_weights))
print(f"the fine-tuning stage changed {changed} of the module's {len(module_weights)} variables")

report = tfptm.evaluate(model, x_test, y_test, class_names=list("56789"))
print(f"accuracy on {report['num_examples']} held-out images: {report['accuracy']:.3f}")

# The fine-tuned model no longer needs the archive: export and check it.
version_dir = tfptm.export.saved_model(model, tempfile.mkdtemp() if FAST else "export", "digits_hub", class_names=list("56789"))
print("SavedModel parity:", tfptm.export.check_saved_model(version_dir, model, x_test))
