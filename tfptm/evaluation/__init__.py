"""Metrics and reports (floor 4)."""

from tfptm.evaluation.features import extract_features
from tfptm.evaluation.metrics import classification_metrics, evaluate, multilabel_metrics, predict_classes, \
    regression_metrics, task_metrics, task_of
from tfptm.evaluation.report import parameter_counts, write_report

__all__ = ["classification_metrics", "extract_features", "evaluate", "multilabel_metrics", "parameter_counts", "predict_classes",
           "regression_metrics", "task_metrics", "task_of", "write_report"]
