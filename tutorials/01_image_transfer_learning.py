"""Tutorial 1: image transfer learning with tfptm's Python API.

Pre-train a small CNN on digits 0-4, then adapt it to digits 5-9 from five
labels per class.

Why two stages? A new head starts random, and its first gradients are large.
If the backbone trained from the start, those gradients would wreck the
pre-trained features. So the head trains first on a frozen backbone. Then
the backbone unfreezes at a lower learning rate.

Why keep BatchNorm frozen? In Keras 3 a frozen BatchNormalization layer also
runs in inference mode: it normalizes with the statistics learnt in
pre-training. Twenty-five images give batch statistics too noisy to
replace them.

Run: python tutorials/01_image_transfer_learning.py   (TFPTM_TUTORIAL_FAST=1 for a smoke run)
"""

import os
import tempfile

import tfptm

FAST = os.environ.get("TFPTM_TUTORIAL_FAST") == "1"
EPOCHS = 2 if FAST else 40

images, labels = tfptm.datasets.load_digits()
x_source, y_source = tfptm.data.select_classes(images, labels, [0, 1, 2, 3, 4])
x_target, y_target = tfptm.data.select_classes(images, labels, [5, 6, 7, 8, 9])
(x_few, y_few), (x_test, y_test) = tfptm.data.sample_per_class(x_target, y_target, 5, seed=0)

# The backbone rescales raw 0-16 pixels itself, so exported models take raw pixels too.
backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(32, 64), input_scale=1 / 16)


def new_head():
    return tfptm.Head("multiclass", num_classes=5, pooling="flatten", dropout=0.2)


# Supervised pre-training on the source task; build_model compiles with the head's loss and metrics.
source = tfptm.build_model(backbone, new_head())
tfptm.finetune(source, tfptm.data.from_arrays(x_source, y_source, seed=0), tfptm.training.full(EPOCHS, 1e-3))

# Transfer: same backbone object, new head for the new classes.
model = tfptm.build_model(tfptm.backbone_of(source), new_head())
few_shot = tfptm.data.from_arrays(x_few, y_few, batch_size=16, seed=0)
tfptm.finetune(model, few_shot, tfptm.training.two_stage(head_epochs=EPOCHS, finetune_epochs=EPOCHS))
report = tfptm.evaluate(model, x_test, y_test, class_names=list("56789"))
print(f"accuracy on {report['num_examples']} held-out images: {report['accuracy']:.3f}")

# Export for TF Serving and for phones, then check both against Keras.
export_dir = tempfile.mkdtemp() if FAST else "export"
version_dir = tfptm.export.saved_model(model, export_dir, "digits_tutorial", class_names=list("56789"))
lite = tfptm.export.tflite(model, os.path.join(export_dir, "digits_tutorial.tflite"), class_names=list("56789"))
print("SavedModel parity:", tfptm.export.check_saved_model(version_dir, model, x_test))
print("TFLite parity:", tfptm.export.check_tflite(lite.path, model, x_test, y_test))
