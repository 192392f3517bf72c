"""Hebb's online-learning service: HTTP API, model workers, stores, CLI."""
