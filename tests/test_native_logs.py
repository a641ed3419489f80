"""TensorFlow's C++ log lines are kept off standard error; tfptm's own lines, warnings and tracebacks are not."""

import csv
import os
import re
import subprocess
import sys

import pytest

from tfptm.native_logs import is_native_log

# absl/glog: severity, date, time, thread, file:line]
CPP_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] ")
# TensorFlow prints more of its C++ lines without TF_CPP_MIN_LOG_LEVEL: the filter must not rely on it
NOISY = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}

NATIVE = [
    "I0000 00:00:1796081533.056789   13996 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "E0000 00:00:1796081536.101355   13996 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    "I0000 00:00:1796081533.057202   13996 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "W0000 00:00:1796081540.000001    7 tensorflow/core/framework/op_kernel.cc:1857] OP_REQUIRES failed",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags.",
]
KEPT = [
    "[    0.0s] reading data (csv)",
    "tfptm: error: head.num_classes is 2 but data.path 'a.csv' has 3 classes ('a', 'b', 'c'); expected 3",
    "epoch 1/3  120.5 examples/s  ETA 4s  loss 1.02",
    "/work/x.py:3: UserWarning: something to know",
    "  warnings.warn('something to know')",
    "Traceback (most recent call last):",
    '  File "<string>", line 1, in <module>',
    "ValueError: E0000 00:00:1796081536.101355   13996 cuda_platform.cc:52] quoted in a message",
    "F0000 00:00:1796081536.101355   13996 check.cc:12] Check failed: fatal lines always pass",
    "WARNING: something else entirely",
    "",
]


@pytest.mark.parametrize("line", NATIVE)
def test_tensorflow_lines_are_native(line):
    assert is_native_log(line.encode())


@pytest.mark.parametrize("line", KEPT)
def test_other_lines_are_kept(line):
    assert not is_native_log(line.encode())


PROGRAM = (
    "{filter}"
    "import tensorflow as tf; tf.constant(1) + 1\n"
    "import sys, warnings\n"
    "print('kept line', file=sys.stderr)\n"
    "warnings.warn('a python warning')\n"
    "raise ValueError('a traceback')\n"
)


def run(program):
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=NOISY, timeout=300)


def native_lines(stderr):
    return [line for line in stderr.splitlines() if CPP_LOG.match(line) or line.startswith("WARNING: All log messages")]


def test_filter_native_logs_in_a_process():
    filtered = run(PROGRAM.format(filter="from tfptm.native_logs import filter_native_logs; filter_native_logs()\n"))
    unfiltered = run(PROGRAM.format(filter=""))
    assert native_lines(unfiltered.stderr), unfiltered.stderr  # else the filter would prove nothing
    assert native_lines(filtered.stderr) == [], filtered.stderr
    for result in (filtered, unfiltered):
        assert result.returncode == 1
        for text in ("kept line", "UserWarning: a python warning", "Traceback (most recent call last)",
                     "ValueError: a traceback"):
            assert text in result.stderr, (text, result.stderr)


def test_the_command_line_filters_unless_verbose(tmp_path):
    path = tmp_path / "one_label.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["text", "label"]] + [[f"text {i}", "spam"] for i in range(10)])
    command = [sys.executable, "-m", "tfptm", "train", "mlm_then_finetune", "--set", "pretrain=null",
               "--set", f"data.path={path}", "--quiet"]
    quiet = subprocess.run(command, capture_output=True, text=True, env=NOISY, cwd=tmp_path, timeout=300)
    assert quiet.returncode == 2
    lines = quiet.stderr.splitlines()
    assert len(lines) == 2 and "reading data" in lines[0] and lines[1].startswith("tfptm: error:"), quiet.stderr
    assert "1 class" in lines[1]
    verbose = subprocess.run(command + ["--verbose"], capture_output=True, text=True, env=NOISY, cwd=tmp_path,
                             timeout=300)
    assert verbose.returncode == 2 and native_lines(verbose.stderr), verbose.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one_label.csv"]
