"""Backbones from every source, resolved by one registry (floor 1).

Each module registers its builders on import: `local` (CNNs), `text_encoders` (RNN and
Transformer models built here).
"""

from tfptm.backbones import hub  # noqa: F401
from tfptm.backbones import local  # noqa: F401  (registers its builders)
from tfptm.backbones import text_encoders  # noqa: F401
from tfptm.backbones import applications, presets, saved  # noqa: F401
from tfptm.backbones.registry import (
    BACKBONE_NAME,
    BackboneEntry,
    available,
    blocks,
    entry,
    get,
    register,
    register_handle_source,
)

__all__ = [
    "BACKBONE_NAME",
    "BackboneEntry",
    "available",
    "blocks",
    "entry",
    "get",
    "register",
    "register_handle_source",
]
