"""Hebb's online-learning service: HTTP API, model workers, stores, CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hebb")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
