"""`authz serve --workers 2` as real processes: one port, two deciding processes, one admin API,
one /metrics for all; and `--workers auto`, which counts the CPUs the process may use.

The example bundle serves; every Check is a real gRPC call, each over a connection
of its own (a local subchannel pool), so the kernel spreads them over the workers.
Which worker holds a connection is read from /proc: the server side of each
established connection is a socket that one worker process has open.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from authz._proto.envoy.service.auth.v3 import external_auth_pb2_grpc
from authz.cli import main
from authz.cpus import usable_cpus
from tests.engine.checks import check_request
from tests.lifecycle.process import Served
from tests.telemetry.scrape import promtool, samples

REPO = Path(__file__).resolve().parents[2]
TOKEN = "workers-admin-token-0123456789abcdef"
CATALOG = check_request(path="/api/v1/catalog", host="api.shop.example.com")  # anybody
WORKER_STARTED = re.compile(r"worker (\d) started \(pid (\d+)\)")
ADMIN_ON = re.compile(r"admin API on 127\.0\.0\.1:(\d+)")
METRICS_ON = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
OK, PERMISSION_DENIED = 0, 7  # google.rpc.Code
SERVING_WORKER = re.compile(r"serving on .* state_dir=\S*worker-(\d+) ")
FRESH = [("grpc.use_local_subchannel_pool", 1)]  # a new connection for every channel


class Workers:
    """The parent process, its workers' pids by index, and its admin port."""

    def __init__(self, served: Served, decision_log: Path) -> None:
        self.served = served
        self.decision_log = decision_log  # each worker writes DECISION_LOG.worker-K
        self.pids: dict[int, int] = {}
        for _ in range(2):
            self.note_started()
        # The parent's admin API and metrics port start before it announces the Check port
        # (Served reads that far).
        self.admin_port = int(next(m for m in map(ADMIN_ON.search, served.seen) if m).group(1))
        self.metrics_port = int(next(m for m in map(METRICS_ON.search, served.seen) if m)[1])
        self.wait_serving(*self.pids)

    def note_started(self, timeout: float = 15) -> int:
        """Wait for the next `worker K started (pid P)` line; record and return P."""
        match = self.served.wait_for(WORKER_STARTED, timeout)
        self.pids[int(match.group(1))] = int(match.group(2))
        return int(match.group(2))

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.served.port}"

    def wait_serving(self, *indexes: int, timeout: float = 20) -> None:
        """Until each worker in ``indexes`` has logged that it serves Check, in any order."""
        waiting = set(indexes)
        while waiting:
            found = self.served.wait_for(SERVING_WORKER, timeout)
            waiting.discard(int(found.group(1)))

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        """One call to the parent's admin API."""
        status, text = _http(self.admin_port, method, path, body, token=TOKEN)
        answer: dict[str, Any] = json.loads(text)
        return status, answer

    def metrics(self, port: int | None = None, token: str | None = None) -> str:
        """GET /metrics on the parent's metrics port (or ``port``), which must answer 200."""
        status, text = _http(port or self.metrics_port, "GET", "/metrics", token=token)
        assert status == 200, text
        return text

    def checks(self, count: int) -> list[tuple[int, str]]:
        """``count`` Checks, each over a new connection: (status code, reason) each."""
        answers = []
        for _ in range(count):
            with grpc.insecure_channel(self.target, options=FRESH) as channel:
                stub = external_auth_pb2_grpc.AuthorizationStub(channel)
                response = stub.Check(CATALOG, timeout=5)
            reason = response.dynamic_metadata.fields["reason"].string_value
            answers.append((response.status.code, reason))
        return answers


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    scratch = tmp_path_factory.mktemp("workers")
    token_file = scratch / "admin-token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    flags = ["--workers", "2", "--admin-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]
    flags += ["--admin-token-file", str(token_file), "--state-dir", str(scratch / "state")]
    flags += ["--decision-log", str(scratch / "decisions.log")]
    with Served(REPO / "policies", *flags) as served:
        running = Workers(served, scratch / "decisions.log")
        try:
            yield running
        finally:
            assert served.stop() == 0
            for pid in running.pids.values():
                assert not _alive(pid), f"worker pid {pid} outlived the parent"


def _http(
    port: int, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, str]:
    """One HTTP call to 127.0.0.1:``port``: its status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=40)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    return response.status, text


def _alive(pid: int) -> bool:
    """Whether ``pid`` still exists (the parent reaps its workers, so no zombies remain)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _connections(port: int, pids: list[int]) -> dict[int, int]:
    """How many established connections to ``port`` each process in ``pids`` holds."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if int(local.rpartition(":")[2], 16) == port and state == "01":
                inodes.add(f"socket:[{inode}]")
    counts = {}
    for pid in pids:
        held = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                held += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
            except OSError:
                continue
        counts[pid] = held
    return counts


def test_connections_are_spread_over_both_workers(workers: Workers) -> None:
    channels = [grpc.insecure_channel(workers.target, options=FRESH) for _ in range(24)]
    try:
        for channel in channels:
            response = external_auth_pb2_grpc.AuthorizationStub(channel).Check(CATALOG, timeout=5)
            assert response.status.code == OK
        held = _connections(workers.served.port, list(workers.pids.values()))
    finally:
        for channel in channels:
            channel.close()
    assert sum(held.values()) == 24, held
    assert all(count > 0 for count in held.values()), held


def test_status_shows_every_worker(workers: Workers) -> None:
    status, report = workers.admin("GET", "/v1/status")
    assert status == 200
    assert [r["replica"] for r in report["replicas"]] == ["worker-1", "worker-2"]
    assert report["skew"] is False and len(report["versions"]) == 1
    assert all(r["result"]["history"] for r in report["replicas"])


def test_lockdown_reaches_every_worker(workers: Workers) -> None:
    body = {"name": "inc-1", "reason": "incident drill"}
    status, report = workers.admin("POST", "/v1/lockdown", body)
    assert status == 200, report
    assert [r["status"] for r in report["replicas"]] == [200, 200]
    try:
        answers = workers.checks(30)
        assert answers == [(PERMISSION_DENIED, "lockdown")] * 30
    finally:
        status, report = workers.admin("DELETE", "/v1/lockdown/inc-1")
    assert status == 200, report
    assert workers.checks(30) == [(OK, "allowed")] * 30


def test_a_refusal_by_every_worker_is_answered_with_its_status(workers: Workers) -> None:
    status, report = workers.admin("POST", "/v1/rollback", {"version": "sha256:" + "0" * 64})
    assert status == 404
    assert [r["result"]["error"] for r in report["replicas"]] == ["unknown_version"] * 2


def test_admin_needs_the_token(workers: Workers) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", workers.admin_port, timeout=10)
    try:
        connection.request("GET", "/v1/status")
        assert connection.getresponse().status == 401
    finally:
        connection.close()


def test_one_metrics_port_answers_for_every_worker(workers: Workers) -> None:
    before = _checks_by_worker(workers.metrics())
    workers.checks(24)
    text = workers.metrics()
    promtool("check", "metrics", stdin=text)
    found = samples(text)
    assert found[("authz_worker_up", frozenset({("worker", "1")}))] == 1
    assert found[("authz_worker_up", frozenset({("worker", "2")}))] == 1
    versions = [dict(labels) for name, labels in found if name == "authz_policy_version_info"]
    assert sorted(labels["worker"] for labels in versions) == ["1", "2"]
    assert len({labels["version"] for labels in versions}) == 1
    after = _checks_by_worker(text)
    assert sum(after.values()) - sum(before.values()) == 24


def test_the_admin_api_serves_the_same_metrics_behind_its_token(workers: Workers) -> None:
    text = workers.metrics(workers.admin_port, token=TOKEN)
    promtool("check", "metrics", stdin=text)
    assert {name for name, _ in samples(text)} == {name for name, _ in samples(workers.metrics())}
    status, _ = _http(workers.admin_port, "GET", "/metrics")
    assert status == 401


def test_a_worker_that_does_not_answer_is_reported_down(workers: Workers) -> None:
    stuck = workers.pids[2]
    os.kill(stuck, signal.SIGSTOP)
    try:
        started = time.monotonic()
        text = workers.metrics()
        waited = time.monotonic() - started
    finally:
        os.kill(stuck, signal.SIGCONT)
    promtool("check", "metrics", stdin=text)
    found = samples(text)
    assert found[("authz_worker_up", frozenset({("worker", "1")}))] == 1
    assert found[("authz_worker_up", frozenset({("worker", "2")}))] == 0
    assert {dict(labels)["worker"] for name, labels in found if name != "authz_worker_up"} == {"1"}
    assert waited < 10  # the scrape waits for a worker a bounded time, then answers
    workers.served.wait_for(re.compile(r"metrics: worker 2 did not answer the scrape"))


def _checks_by_worker(text: str) -> dict[str, float]:
    """authz_checks_total summed per worker."""
    counted: dict[str, float] = {}
    for (name, labels), count in samples(text).items():
        if name == "authz_checks_total":
            worker = dict(labels)["worker"]
            counted[worker] = counted.get(worker, 0) + count
    return counted


def test_a_killed_worker_is_restarted_and_the_port_keeps_answering(workers: Workers) -> None:
    killed = workers.pids[1]
    os.kill(killed, signal.SIGKILL)
    workers.served.wait_for(re.compile(rf"worker 1 \(pid {killed}\) exited with status -9"))
    scraped = samples(workers.metrics())  # answered, whether worker 1 is back yet or not
    assert scraped[("authz_worker_up", frozenset({("worker", "2")}))] == 1
    # Worker 2 alone: every new connection reaches it.
    assert workers.checks(20) == [(OK, "allowed")] * 20
    restarted = workers.note_started()
    assert restarted != killed
    workers.wait_serving(1)
    status, report = workers.admin("GET", "/v1/status")  # the relay reaches the new worker
    assert status == 200 and all(r["ok"] for r in report["replicas"]), report
    held = _connections(workers.served.port, [restarted])
    assert held == {restarted: 0}  # the checks' connections are closed: none left over
    test_connections_are_spread_over_both_workers(workers)


def test_sigterm_drains_every_worker() -> None:
    with Served(REPO / "policies", "--workers", "2") as served:
        pids = [int(served.wait_for(WORKER_STARTED).group(2)) for _ in range(2)]
        for _ in pids:
            served.wait_for(re.compile(r"serving on .* state_dir=none"))
        assert served.stop() == 0
        served.wait_for(re.compile(r"authz\.workers: stopped"))
        drained = [line for line in served.seen if "stopping: draining in-flight" in line]
        assert len(drained) == 2
        assert not any(_alive(pid) for pid in pids)


def test_each_worker_writes_its_own_decision_log(workers: Workers) -> None:
    directory = workers.decision_log.parent
    workers.checks(24)

    def records() -> dict[str, list[dict[str, Any]]]:
        found = {}
        for path in sorted(directory.glob("decisions.log.worker-*")):
            found[path.name] = [json.loads(line) for line in path.read_text().splitlines()]
        return found

    deadline = time.monotonic() + 30
    while not (len(logs := records()) == 2 and all(logs.values())):
        assert time.monotonic() < deadline, f"decision logs: {list(records())}"
        time.sleep(0.1)
    assert not (directory / "decisions.log").exists()  # no file shared by two writers
    assert all(r["type"] == "decision" for lines in logs.values() for r in lines)


RESOLVED = re.compile(r"workers: (\d+) \(auto: ")


def test_auto_with_one_usable_cpu_serves_from_this_process() -> None:
    one = {min(os.sched_getaffinity(0))}
    with Served(REPO / "policies", "--workers", "auto", cpus=one) as served:
        assert "policy_version=" in served.banner  # the server itself, no supervisor
        resolved = next(m for m in map(RESOLVED.search, served.seen) if m)
        assert resolved[1] == "1" and "1 usable CPU" in resolved.string
        assert _children(served.process.pid) == set()
        assert served.stop() == 0
    assert not any(WORKER_STARTED.search(line) for line in served.seen)


def test_by_default_one_worker_serves_per_usable_cpu() -> None:
    """Without AUTHZ_WORKERS (which the test environment sets to 1) nor --workers: auto.
    At most two CPUs are handed to the server, so at most two workers start."""
    cpus = set(sorted(os.sched_getaffinity(0))[:2])
    expected = usable_cpus(affinity=len(cpus)).count  # this machine's quota, if any
    environment = {k: v for k, v in os.environ.items() if k != "AUTHZ_WORKERS"}
    with Served(REPO / "policies", env=environment, cpus=cpus) as served:
        resolved = next(m for m in map(RESOLVED.search, served.seen) if m)
        assert int(resolved[1]) == expected, resolved.string
        if expected == 1:
            assert "policy_version=" in served.banner
            assert _children(served.process.pid) == set()
        else:
            assert f"with {expected} workers" in served.banner
            pids = {int(served.wait_for(WORKER_STARTED)[2]) for _ in range(expected)}
            for _ in pids:
                served.wait_for(re.compile(r"serving on .* state_dir=none"), timeout=30)
            assert _children(served.process.pid) == pids
        assert served.stop() == 0


@pytest.mark.parametrize("workers", ["0", "many", "-2", ""])
def test_a_worker_count_must_be_a_number_or_auto(
    workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--policies", str(REPO / "policies"), "--workers", workers])
    assert exited.value.code == 2
    assert "argument --workers" in capsys.readouterr().err


def _children(pid: int) -> set[int]:
    """The pids whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found
