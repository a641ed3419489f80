"""Tutorial 3: feature extraction with scikit-learn on top of a pre-trained backbone.

Pre-train a small CNN on digits 0-4, then use it as a fixed feature
extractor for digits 5-9: `tfptm.evaluation.extract_features` runs the
images through the backbone in batches and pools each feature map to one
vector, and scikit-learn's LogisticRegression learns the new classes from
twenty labels per class.

Why extract features rather than fine-tune? Nothing in the network trains,
so it is fast, cannot overfit the backbone to a few labels, and any
scikit-learn model (logistic regression, SVMs, k-NN) can sit on top.

Run: python tutorials/03_feature_extraction.py   (TFPTM_TUTORIAL_FAST=1 for a smoke run)
"""

import os

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import tfptm

FAST = os.environ.get("TFPTM_TUTORIAL_FAST") == "1"
EPOCHS = 3 if FAST else 30

images, labels = tfptm.datasets.load_digits()
x_source, y_source = tfptm.data.select_classes(images, labels, [0, 1, 2, 3, 4])
x_target, y_target = tfptm.data.select_classes(images, labels, [5, 6, 7, 8, 9])
(x_few, y_few), (x_test, y_test) = tfptm.data.sample_per_class(x_target, y_target, 20, seed=0)

# Supervised pre-training on the source classes.
backbone = tfptm.backbones.get("vgg_cnn", input_shape=(8, 8, 1), filters=(32, 64), input_scale=1 / 16)
source = tfptm.build_model(backbone, tfptm.Head("multiclass", num_classes=5, pooling="avg"))
tfptm.finetune(source, tfptm.data.from_arrays(x_source, y_source, seed=0), tfptm.training.full(EPOCHS, 1e-3), verbose=0)

# Features: the backbone of `source` (its head is left out), average-pooled to one 64-vector per image.
train_features = tfptm.evaluation.extract_features(source, x_few, pooling="avg")
test_features = tfptm.evaluation.extract_features(source, x_test, pooling="avg", batch_size=128)
print("features:", train_features.shape, test_features.shape)

classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
classifier.fit(train_features, y_few)
accuracy = classifier.score(test_features, y_test)
print(f"accuracy on {len(y_test)} held-out images: {accuracy:.3f}")

# Check: the extracted features are the backbone's feature maps averaged over positions.
maps = np.asarray(backbone(x_test[:16]))
difference = float(np.abs(maps.mean(axis=(1, 2)) - test_features[:16]).max())
print("Feature check:", {"max_abs_difference": difference, "ok": difference < 1e-4 and accuracy > 0.2})
