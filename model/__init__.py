"""Hebb's learning engine: deep networks that learn online with local rules only.

Importing this package only pins OpenBLAS's kernels (before anything loads numpy); the names
below are imported on first use, so ``import model`` stays cheap for code that needs no engine.
"""

import importlib

from model.portable_blas import pin_openblas_kernels

pin_openblas_kernels()

_EXPORTS = {
    "DEFAULT_PRESET": "model.config", "PRESETS": "model.config", "NetworkConfig": "model.config",
    "make_config": "model.config", "Network": "model.network", "Snapshot": "model.network",
    "StateError": "model.state", "decode_state": "model.state", "encode_state": "model.state",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
