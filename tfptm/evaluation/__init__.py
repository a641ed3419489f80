"""Metrics and reports (floor 4)."""

from tfptm.evaluation.features import extract_features
from tfptm.evaluation.metrics import classification_metrics, evaluate, predict_classes

__all__ = ["classification_metrics", "extract_features", "evaluate", "predict_classes"]
