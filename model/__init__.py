"""Hebb's learning engine: deep networks that learn online with local rules only."""

from model.portable_blas import pin_openblas_kernels

pin_openblas_kernels()  # before the imports below load numpy (and with it OpenBLAS)

from model.config import DEFAULT_PRESET, PRESETS, NetworkConfig, make_config
from model.network import Network, Snapshot
from model.state import StateError, decode_state, encode_state

__all__ = ["DEFAULT_PRESET", "PRESETS", "Network", "NetworkConfig", "Snapshot", "StateError",
           "decode_state", "encode_state", "make_config"]
