"""Hebb's online-learning service: HTTP API, model workers, stores, CLI."""

# first: importing the engine pins OpenBLAS's kernel family before anything loads numpy
# (model.portable_blas); the service's own modules may import numpy before they import the engine
import model  # noqa: F401, I001

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hebb")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
