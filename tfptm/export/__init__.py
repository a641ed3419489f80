"""Export for TF Serving (SavedModel) and mobile (TFLite), with parity checks (floor 4)."""

from tfptm.export.parity import check_saved_model, check_tflite
from tfptm.export.serving import existing_versions, saved_model
from tfptm.export.litert import QUANTIZATIONS, TFLiteExport, read_metadata, run_tflite, tflite

__all__ = [
    "QUANTIZATIONS",
    "TFLiteExport",
    "check_saved_model",
    "check_tflite",
    "existing_versions",
    "read_metadata",
    "run_tflite",
    "saved_model",
    "tflite",
]
