"""`summary.json`: the one result file every tfptm run writes, in one shape."""

import io
from pathlib import Path

from tfptm.files import write_bytes_atomic, write_json_atomic

SUMMARY_FILE = "summary.json"
REPRESENTATIVE_EXAMPLES = 256  # inputs kept for `tfptm export`: int8 calibration and parity checks


def write_summary(run_dir, metrics, artifacts, parity, **extra):
    """Writes `{"metrics": ..., "artifacts": ..., "parity": ..., **extra}` to `run_dir/summary.json`.

    `metrics` maps a model name to its metrics, `artifacts` an artifact kind to
    its path (paths are written absolute), `parity` an artifact kind to its check.
    """
    summary = {
        "metrics": metrics,
        "artifacts": {kind: str(Path(path).resolve()) for kind, path in artifacts.items()},
        "parity": parity,
        **extra,
    }
    write_json_atomic(Path(run_dir) / SUMMARY_FILE, summary)
    return summary


def format_summary(summary):
    """A run's summary as a few lines of text: one row per model, one per artifact.

    Example:
    >>> print(format_summary({"metrics": {"model": {"accuracy": 0.9, "f1_macro": 0.85, "num_examples": 40}},
    ...                       "artifacts": {}, "parity": {}}))
    model            accuracy  F1 (macro)  examples
    model               0.900       0.850        40
    """
    rows = ["model            accuracy  F1 (macro)  examples"] if summary.get("metrics") else []
    for name, m in summary.get("metrics", {}).items():
        if "accuracy" in m and "f1_macro" in m:
            rows.append(f"{name:<16} {m['accuracy']:>8.3f}  {m['f1_macro']:>10.3f}  {m['num_examples']:>8}")
        else:  # e.g. language-model pre-training: losses and perplexity
            rows.append(f"{name:<16} " + ", ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, (int, float))))
    sizes, parity = summary.get("sizes", {}), summary.get("parity", {})
    for kind, path in summary.get("artifacts", {}).items():
        check = parity.get(kind)
        verdict = "" if check is None else ("parity OK" if check["ok"] else "parity FAILED")
        size = f"{sizes[kind] / 1024:9.1f} KiB" if kind in sizes else " " * 13
        rows.append(f"{kind:<16} {size}  {verdict:<13} {path}")
    return "\n".join(rows)


def parity_ok(summary):
    """True when every parity check in the summary passed (or there were none)."""
    return all(check.get("ok") for check in summary.get("parity", {}).values())


def write_representative(run_dir, x, limit=REPRESENTATIVE_EXAMPLES):
    """Saves up to `limit` model inputs beside the model, for `tfptm.export.export_run` to calibrate and check with.

    An array goes to `representative.npy` (the file `export_run` reads); a
    dict of arrays (a model with named inputs) to `representative.npz`.
    Returns the path.

    Example:
    >>> import tempfile, numpy as np
    >>> write_representative(tempfile.mkdtemp(), np.zeros((300, 8, 8, 1)), limit=16).name
    'representative.npy'
    """
    import numpy as np

    from tfptm.export.run import REPRESENTATIVE_FILE

    buffer = io.BytesIO()
    if isinstance(x, dict):
        np.savez(buffer, **{key: np.asarray(value)[:limit] for key, value in x.items()})
        path = Path(run_dir) / Path(REPRESENTATIVE_FILE).with_suffix(".npz")
    else:
        np.save(buffer, np.asarray(x)[:limit], allow_pickle=False)
        path = Path(run_dir) / REPRESENTATIVE_FILE
    write_bytes_atomic(path, buffer.getvalue())
    return path
