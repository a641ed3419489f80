"""Metrics and reports (floor 4)."""

from tfptm.evaluation.features import extract_features
from tfptm.evaluation.metrics import classification_metrics, evaluate, predict_classes
from tfptm.evaluation.report import parameter_counts, write_report

__all__ = ["classification_metrics", "extract_features", "evaluate", "parameter_counts", "predict_classes", "write_report"]
