"""The ``troupe`` command line: one parser, with each area adding its own subcommands.

``sim`` and ``bench sim`` come from :mod:`sim.cli`; ``node`` and ``cluster`` from
:mod:`transport.node_cli`; ``submit``, ``jobs``, ``dlq`` and ``stats`` from
:mod:`transport.jobs_cli`; ``bench failover`` and ``bench raft`` from :mod:`transport.bench`;
``bench jobs`` from :mod:`transport.bench_jobs`; ``bench huey`` from :mod:`transport.bench_huey`;
``bench versus`` from :mod:`transport.bench_versus`;
``config`` from :mod:`transport.config_cli`.
Every handler returns the process exit code. A malformed command line is reported in one line
(``troupe submit: error: ...; see troupe submit --help``) with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn, cast


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    from sim import cli as sim_cli
    from transport import auth_cli, bench_huey, bench_jobs, bench_versus, config_cli, jobs_cli, node_cli
    from transport import bench as bench_cli

    parser = OneLineParser(
        prog="troupe",
        description="Troupe: distributed job processing on actors, real or simulated.",
    )
    # Subparsers are OneLineParsers too (argparse makes them of the parent's class).
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )
    sim_cli.register(sub)
    node_cli.register(sub)
    jobs_cli.register(sub)
    config_cli.register(sub)
    auth_cli.register(sub)
    bench = sub.add_parser(
        "bench", help="benchmarks: the simulator, real-process failover, Raft, jobs, jobs on Huey, both"
    )
    bench_sub = bench.add_subparsers(dest="bench_command", required=True, metavar="TARGET")
    sim_cli.register_bench(bench_sub)
    bench_cli.register(bench_sub)
    bench_jobs.register(bench_sub)
    bench_huey.register(bench_sub)
    bench_versus.register(bench_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
