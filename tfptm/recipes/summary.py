"""`summary.json`: the one result file every tfptm run writes, in one shape."""

from pathlib import Path

from tfptm.files import write_json_atomic

SUMMARY_FILE = "summary.json"


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
        rows.append(f"{name:<16} {m['accuracy']:>8.3f}  {m['f1_macro']:>10.3f}  {m['num_examples']:>8}")
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
