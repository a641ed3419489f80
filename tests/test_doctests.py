"""The docstring examples in tfptm/ keep running in CI: setup.cfg's [tool:pytest] and the root conftest.py."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _root_conftest(config):
    for plugin in config.pluginmanager.get_plugins():
        if Path(getattr(plugin, "__file__", "") or "").resolve() == ROOT / "conftest.py":
            return plugin
    raise AssertionError(f"{ROOT / 'conftest.py'} is not loaded")


def test_config_collects_docstring_examples(pytestconfig):
    assert "tfptm" in pytestconfig.getini("testpaths")
    assert "--doctest-modules" in pytestconfig.getini("addopts")
    assert {"ELLIPSIS", "NORMALIZE_WHITESPACE"} <= set(pytestconfig.getini("doctest_optionflags"))
    assert any(line.startswith("slow:") for line in pytestconfig.getini("markers"))


def test_pytest_collects_examples_and_deselects_slow_ones():
    # No --doctest-modules here: the configuration must add it.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tfptm/heads.py", "tfptm/pretrain/mlm.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    collected = result.stdout.split()
    assert "tfptm/heads.py::tfptm.heads.Head" in collected, result.stdout
    assert "tfptm/pretrain/mlm.py::tfptm.pretrain.mlm.mask_generator" in collected, result.stdout
    # masked_lm trains: marked slow by the root conftest, deselected by addopts' -m "not slow"
    assert "tfptm/pretrain/mlm.py::tfptm.pretrain.mlm.masked_lm" not in collected, result.stdout
    assert "1 deselected" in result.stdout, result.stdout


def _resolve(name):
    """The object a doctest name (`module.object.attribute`) stands for, from the module's own file.

    The module must be a file in tfptm/ (a stand-in forwarding an old, moved module path does not count:
    pytest names a doctest after the file it is in).
    """
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        path = ROOT.joinpath(*parts[:split])
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            obj = importlib.import_module(".".join(parts[:split]))
            for attribute in parts[split:]:
                obj = getattr(obj, attribute)
            return obj
    raise ModuleNotFoundError(f"no module file for {name}")


def test_listed_doctest_names_exist(pytestconfig):
    """A renamed or moved example must be renamed in conftest.py too, or it silently loses its mark."""
    conftest = _root_conftest(pytestconfig)
    stale = []
    for name in sorted(conftest.SLOW_DOCTESTS | set(conftest.KNOWN_FAILING_DOCTESTS)):
        try:
            if ">>>" not in (_resolve(name).__doc__ or ""):
                stale.append(f"{name} (no example)")
        except (ImportError, AttributeError) as error:
            stale.append(f"{name} ({error})")
    assert not stale, f"conftest.py lists doctests that do not exist: {', '.join(stale)}"
