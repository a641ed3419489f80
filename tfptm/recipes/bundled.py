"""The example recipes shipped with tfptm (`tfptm/recipes/bundled/*.yaml`).

Example:
>>> "image_transfer" in bundled_names()
True
>>> describe("image_transfer").startswith("Image transfer")
True
"""

import difflib
from pathlib import Path

import yaml

from tfptm.errors import TfptmError

BUNDLED_DIR = Path(__file__).parent / "bundled"


def bundled_names():
    """Names of the bundled recipes, sorted."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.yaml"))


def bundled_path(name):
    """The file of bundled recipe `name` (a `TfptmError` with suggestions if there is none)."""
    path = BUNDLED_DIR / f"{name}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(str(name), bundled_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TfptmError(f"No bundled recipe {name!r}; expected one of: {', '.join(bundled_names())}{hint}")
    return path


def describe(name):
    """The one-line `description` of bundled recipe `name`."""
    return str(yaml.safe_load(bundled_path(name).read_text(encoding="utf-8")).get("description", "")).strip()


def resolve_recipe_path(name_or_path):
    """A recipe argument as a path: an existing file, else a bundled recipe's name.

    >>> resolve_recipe_path("image_transfer").name
    'image_transfer.yaml'
    """
    path = Path(name_or_path)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in str(name_or_path):
        return path
    return bundled_path(name_or_path)
