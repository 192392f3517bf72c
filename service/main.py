"""``hebb serve``: run the online-learning service (uvicorn). Flags override ``HEBB_*`` variables."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from service.settings import Settings

# flag -> settings field (flags default to None = "use HEBB_* or the built-in default")
_FLAGS = {"host": str, "port": int, "store": str, "api_keys": str, "max_body_bytes": int,
          "prediction_retention": int, "prediction_ttl_seconds": float, "log_level": str, "log_format": str,
          "workers": int, "checkpoint_every_samples": int, "checkpoint_every_seconds": float,
          "role": str, "lease_ttl_seconds": float, "publish_every_seconds": float, "learner_max_models": int}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    help_of = {name: field.description or "" for name, field in Settings.model_fields.items()}
    for name, kind in _FLAGS.items():
        env = f"HEBB_{name.upper()}"
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None,
                            help=f"{help_of.get(name, '')} (env {env})")
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {name: getattr(args, name) for name in _FLAGS if getattr(args, name, None) is not None}
    if getattr(args, "no_access_log", False):
        overrides["access_log"] = False
    return Settings(**overrides)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        settings.api_key_scopes()
    except (ValidationError, ValueError) as exc:
        print(f"hebb serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from service.app import create_app
    from service.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    # the learner threads hold the GIL between numba calls; a shorter switch interval (default 5 ms)
    # lets the event loop take it back sooner, which trims prediction latency tails while learning
    sys.setswitchinterval(0.001)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                loop="auto", http="auto", timeout_graceful_shutdown=30, lifespan="on")
    return 0
