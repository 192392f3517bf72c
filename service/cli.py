"""The ``hebb`` console command. Each subcommand lives in its own module exposing
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "bench": ("model.bench", "one online pass over an IDX dataset, then a frozen test evaluation"),
    "serve": ("service.main", "run the online-learning HTTP service"),
    "loadtest": ("service.loadtest", "measure a running service's ingest rate and predict latency"),
    "stream": ("service.stream", "stream an IDX dataset into a running service through the SDK"),
    "compare": ("model.compare", "Hebb against River and scikit-learn on the same stream"),
    "bench-durability": ("service.durability_bench", "ingest rate per store, checkpoint and recovery times"),
    "dashboard-probe": ("service.dashboard_probe", "watch a model like the dashboard does: snapshot gaps, picture times"),
    "bench-deploy": ("service.deploy_bench", "scale-out roles: published state size, predictor lag, failover time"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hebb", description="Hebb: online learning with local rules")
    sub = parser.add_subparsers(dest="command", required=True)
    argv = sys.argv[1:] if argv is None else argv
    for name, (module_name, help_text) in _available().items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        # only the chosen command's module is imported (the server's stack is not loaded for bench)
        if argv and argv[0] == name:
            module = importlib.import_module(module_name)
            module.add_arguments(sp)
            sp.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
