"""Methods of the comparison, one module each, declared in :mod:`hetmtl.methods.registry`.

Importing this package imports no torch (params reads the registry through it):
``METHODS`` (name -> class), ``Method`` and ``TaskInfo`` are imported on first use.
"""

from __future__ import annotations

import importlib

from hetmtl.methods.registry import METHOD_SPECS

__all__ = ["METHODS", "METHOD_SPECS", "Method", "TaskInfo"]


def _classes() -> dict:
    """Every registered method's class, by name (the registry's ``target``)."""
    out = {}
    for name, spec in METHOD_SPECS.items():
        module, cls = spec.target.split(":")
        out[name] = getattr(importlib.import_module(module), cls)
    return out


def __getattr__(name: str):
    if name == "METHODS":
        globals()["METHODS"] = _classes()
        return globals()["METHODS"]
    if name in ("Method", "TaskInfo"):
        from hetmtl.methods import base

        return getattr(base, name)
    raise AttributeError(f"module 'hetmtl.methods' has no attribute {name!r}")
