"""Package exports imported on first use (PEP 562).

A package's `__init__` re-exports its main names for convenience, but importing a torch-free
submodule (a config, read by the CLI at start-up) must not import torch through the package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]) -> tuple[Callable[[str], object], list[str]]:
    """(`__getattr__`, `__all__`) of a package exporting `modules` = {module: (names, ...)}."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__, sorted(where)
