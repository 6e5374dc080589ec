"""Running the authoring commands in process, as `authz` would, capturing their output.

`authz test` and `authz diff` are registered on the `authz` parser by the
functions of authz.authoring_cli; here they hang off a parser of their own so
the tests do not depend on how authz/cli.py wires them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
from dataclasses import dataclass
from pathlib import Path

from authz.authoring_cli import add_diff_parser, add_test_parser

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"


@dataclass(frozen=True, slots=True)
class Run:
    """What a command returned and printed."""

    status: int
    stdout: str
    stderr: str


def authz(*argv: str) -> Run:
    """Run `authz test …` or `authz diff …` in process."""
    parser = argparse.ArgumentParser(prog="authz")
    commands = parser.add_subparsers(dest="command", required=True)
    add_test_parser(commands)
    add_diff_parser(commands)
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status: int = args.run(args)
    return Run(status, out.getvalue(), err.getvalue())


def copy_example(target: Path, *, tests: bool = True) -> Path:
    """A copy of policies/ (without its PolicyTests unless ``tests``)."""
    shutil.copytree(POLICIES, target)
    if not tests:
        shutil.rmtree(target / "tests")
    return target
