"""What every test runs under: the `authz serve` processes tests start serve from one process;
the h2load fixture of the benchmark tests.

The default, ``--workers auto``, starts one worker per usable CPU under a supervisor;
the tests that start a server read one process's log and pid. A test of workers asks
for them with ``--workers``, which overrides this; a test of ``auto`` removes the
variable from its child's environment. `make run` and real users keep the default.
"""

from __future__ import annotations

import os

import pytest

from bench.load_h2load import H2loadError, ensure_h2load

os.environ["AUTHZ_WORKERS"] = "1"


@pytest.fixture(scope="session")
def h2load() -> str:
    """The h2load binary (Debian's nghttp2-client, installed when run as root)."""
    try:
        return ensure_h2load()
    except H2loadError as exc:
        pytest.skip(f"h2load (Debian nghttp2-client) is not available: {exc}")
