"""The open-loop runner against real servers: good answers, refusals and gRPC errors counted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.compare.load import OpenLoopPlan, Request, open_loop
from bench.compare.setups import SETUPS, Workload
from bench.load_request import frame


@pytest.fixture(scope="module")
def rbac(load: Workload) -> Iterator[Request]:
    """The request the benchmark sends to the RBAC Envoy, with that Envoy running."""
    with SETUPS["envoy-rbac"].start(load) as target:
        yield target.request


def test_allowed_requests_are_completions(h2load: str, rbac: Request, tmp_path: Path) -> None:
    plan = OpenLoopPlan.for_rate(100, duration_s=1)
    measured = open_loop([], h2load, rbac, plan, tmp_path / "log.tsv")
    assert (measured.completed, measured.errors, measured.payload_ok) == (100, 0, True)
    assert measured.stayed_open_loop is True


def test_refused_requests_are_errors_counted_once(
    h2load: str, rbac: Request, tmp_path: Path
) -> None:
    anonymous = tuple(h for h in rbac.headers if not h.startswith("authorization:"))
    plan = OpenLoopPlan.for_rate(100, duration_s=1)
    refused = dataclasses.replace(rbac, headers=anonymous)
    measured = open_loop([], h2load, refused, plan, tmp_path / "log.tsv")
    assert (measured.completed, measured.errors) == (0, 100)


@pytest.fixture(scope="module")
def authz(load: Workload) -> Iterator[Request]:
    """The CheckRequest the benchmark sends to ``authz serve``, with the server running."""
    with SETUPS["authz"].start(load) as target:
        yield target.request


def test_grpc_errors_are_errors_though_http_says_200(
    h2load: str, authz: Request, tmp_path: Path
) -> None:
    # Not a protobuf message: the server fails the call with a trailers-only gRPC error.
    garbage = tmp_path / "garbage.grpc"
    garbage.write_bytes(frame(b"\xff\xff\xff\xff"))
    plan = OpenLoopPlan.for_rate(100, duration_s=1)
    broken = dataclasses.replace(authz, body=garbage)
    measured = open_loop([], h2load, broken, plan, tmp_path / "log.tsv")
    assert (measured.completed, measured.errors, measured.unexpected_answers) == (0, 100, 100)
    assert measured.payload_ok is False


def test_envoy_calling_the_bare_ceiling_passes_every_request(
    h2load: str, load: Workload, tmp_path: Path
) -> None:
    # The floor setup: Envoy asks a server that allows without reading, so even a
    # request without a token reaches the upstream (authz would answer 401).
    with SETUPS["envoy-ceiling"].start(load) as target:
        anonymous = tuple(h for h in target.request.headers if not h.startswith("authorization:"))
        plan = OpenLoopPlan.for_rate(100, duration_s=1)
        unchecked = dataclasses.replace(target.request, headers=anonymous)
        measured = open_loop([], h2load, unchecked, plan, tmp_path / "log.tsv")
    assert (measured.completed, measured.errors, measured.payload_ok) == (100, 0, True)


def test_the_cached_setup_runs_authz_with_its_decision_cache(
    h2load: str, load: Workload, tmp_path: Path
) -> None:
    with SETUPS["authz-cached"].start(load) as target:
        plan = OpenLoopPlan.for_rate(100, duration_s=1)
        measured = open_loop([], h2load, target.request, plan, tmp_path / "log.tsv")
    assert (measured.completed, measured.errors, measured.payload_ok) == (100, 0, True)
    assert "decision cache: up to 10000 decisions" in (load.work / "authz-server.log").read_text()
