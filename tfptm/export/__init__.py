"""Export for TF Serving (SavedModel) and mobile (TFLite), with parity checks and predictions (floor 4)."""

from tfptm.export.benchmark import tflite_report
from tfptm.export.describe import describe_saved_model
from tfptm.export.exporter import FORMATS, export_checked
from tfptm.export.litert import QUANTIZATIONS, TFLiteExport, read_metadata, run_tflite, tflite
from tfptm.export.parity import check_saved_model, check_tflite
from tfptm.export.predict import format_predictions, predict
from tfptm.export.serving import existing_versions, saved_model
from tfptm.export.serving_config import grpc_request, models_config, rest_request, serve_command, write_models_config

__all__ = [
    "FORMATS",
    "QUANTIZATIONS",
    "TFLiteExport",
    "check_saved_model",
    "check_tflite",
    "describe_saved_model",
    "existing_versions",
    "export_checked",
    "format_predictions",
    "grpc_request",
    "models_config",
    "predict",
    "read_metadata",
    "rest_request",
    "run_tflite",
    "saved_model",
    "serve_command",
    "tflite",
    "tflite_report",
    "write_models_config",
]


def __getattr__(name):
    if name == "export_run":  # what `tfptm export RUN` runs: a job, now `tfptm.jobs.export.export_run`
        from tfptm._moved import moved_attribute

        return moved_attribute("tfptm.export.export_run", "tfptm.jobs.export", "export_run")
    raise AttributeError(f"module 'tfptm.export' has no attribute {name!r}")
