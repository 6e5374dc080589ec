"""Shared fixtures: one scratch bundle, token and CheckRequest for the compare tests."""

from __future__ import annotations

import pytest

from bench.compare.run import Settings, workload
from bench.compare.setups import Workload


@pytest.fixture(scope="module")
def load(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    """The benchmark's workload, as ``python -m bench.compare`` prepares it."""
    work = tmp_path_factory.mktemp("compare")
    return workload(work, Settings().cerbos_cache)
