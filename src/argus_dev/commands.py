"""The dev harness's ``argus`` commands: ``argus bench``, ``argus dev up|down|status`` and ``argus demo --distributed``.

The runtime CLI (``argus.cli``) finds them through entry points (``argus.commands``: a function that adds its
sub-parser; ``argus.demo_modes``: a function that runs a demo) and never imports this package, so an install
without the dev harness, or with a broken one, still runs every stage.

The benchmarks are ``bench/`` of a source checkout, not part of any wheel: ``argus bench ARGS`` runs
``python -m bench ARGS`` (arguments passed through untouched) with the checkout as working directory, and says so
plainly when there is no checkout to run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from argus.errors import ConfigError

if TYPE_CHECKING:
    from argus.demo import DemoResult

#: Set ARGUS_REPO to the checkout whose bench/ ``argus bench`` runs (as ``argus dev`` uses it for its cache).
REPO_ENV = "ARGUS_REPO"

def is_checkout(path: Path) -> bool:
    """A source checkout of Argus: its pyproject and the benchmarks' entry module side by side."""
    return (path / "pyproject.toml").is_file() and (path / "bench" / "run.py").is_file()


def find_checkout(*, cwd: Path | None = None, env: dict[str, str] | None = None) -> Path | None:
    """The checkout ``argus bench`` runs: ``$ARGUS_REPO``, else the one this module is installed from (an editable
    install), else the working directory or a folder above it. None when there is none."""
    env = dict(os.environ) if env is None else env
    if env.get(REPO_ENV):
        given = Path(env[REPO_ENV]).resolve()
        if not is_checkout(given):
            raise ConfigError(f"{REPO_ENV}: expected a source checkout of Argus (pyproject.toml and bench/run.py), "
                              f"got {given}")
        return given
    here = Path(__file__).resolve()
    start = (cwd or Path.cwd()).resolve()
    for candidate in (*here.parents, start, *start.parents):
        if is_checkout(candidate):
            return candidate
    return None


def bench_command(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
                  ) -> tuple[list[str], Path]:
    """The command line ``argus bench ARGV`` runs and the checkout it runs in, or (raised) why there is none."""
    root = find_checkout(cwd=cwd, env=env)
    if root is None:
        raise ConfigError("argus bench: the benchmarks are bench/ of a source checkout and are not installed with "
                          f"Argus: expected a checkout at or above {(cwd or Path.cwd()).resolve()} (or {REPO_ENV}), "
                          "got none; clone the repository, run scripts/setup.sh --dev and run argus bench there")
    return [sys.executable, "-m", "bench", *argv], root


def cmd_bench(args: argparse.Namespace) -> int:
    argv, root = bench_command(list(args.extra_args))
    return subprocess.call(argv, cwd=root)


def add_bench(sub: Any) -> None:
    """Entry point ``argus.commands: bench``. It parses nothing itself: bench/run.py owns every option."""
    p = sub.add_parser("bench", add_help=False, help="benchmarks: every stage and the pipeline against its limits "
                       "(a source checkout's bench/; argus bench --help)")
    p.set_defaults(fn=cmd_bench, pass_through=True, extra_args=[])


def cmd_dev(args: argparse.Namespace) -> int:
    from argus_dev.devservers import manager

    return int(manager.main([args.action, *args.names]) or 0)


def add_dev(sub: Any) -> None:
    """Entry point ``argus.commands: dev``."""
    p = sub.add_parser("dev", help="install/start/stop the real servers for development and tests")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("names", nargs="*", help="kafka, triton, mongo, prometheus (default: all)")
    p.set_defaults(fn=cmd_dev)


def distributed_demo(*, data_dir: Path) -> DemoResult:
    """Entry point ``argus.demo_modes: distributed``: the demo over the servers ``argus dev up`` started."""
    from argus_dev.cluster import Servers
    from argus_dev.demo import run_distributed_demo

    return run_distributed_demo(servers=Servers.from_dev(), data_dir=data_dir)
