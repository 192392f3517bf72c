"""Hebb's learning engine: deep networks that learn online with local rules only.

Importing this package only pins OpenBLAS's kernels and quiets its idle workers (before anything
loads numpy, see ``model.portable_blas``); the names below are imported on first use, so
``import model`` stays cheap for code that needs no engine.
"""

import importlib as _importlib
from typing import TYPE_CHECKING

from model.portable_blas import pin_openblas_kernels as _pin_openblas_kernels
from model.portable_blas import quiet_openblas_workers as _quiet_openblas_workers

_pin_openblas_kernels()
_quiet_openblas_workers()

if TYPE_CHECKING:   # what type checkers and editors see; at run time __getattr__ imports on use
    from model.config import DEFAULT_PRESET, PRESETS, NetworkConfig, make_config  # noqa: F401
    from model.network import Network, Snapshot  # noqa: F401
    from model.state import StateError, decode_state, encode_state  # noqa: F401

_EXPORTS = {
    "DEFAULT_PRESET": "model.config", "PRESETS": "model.config", "NetworkConfig": "model.config",
    "make_config": "model.config", "Network": "model.network", "Snapshot": "model.network",
    "StateError": "model.state", "decode_state": "model.state", "encode_state": "model.state",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'model' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
