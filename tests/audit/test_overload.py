"""Overload: allows are shed and counted, denies use their reserve and are never lost silently.

The real service decides; the log file is real; its writes are held back by a gate
(the one seam faked here) so that the queue fills deterministically.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from authz.audit import DecisionLog
from authz.audit.lines import LineFile
from authz.policy.bundle import load_bundle
from authz.server import AuthorizationService
from authz.store import SnapshotStore
from tests.audit.conftest import read_lines
from tests.engine.checks import check_request
from tests.policy.bundles import SigningKey
from tests.server.serving import live_token


class GatedFile(LineFile):
    """A real log file whose first write waits until the gate opens."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def write(self, text: str) -> None:
        self.entered.set()
        assert self.gate.wait(60), "the gate was never opened"
        super().write(text)


def test_allows_are_shed_denies_are_kept_and_losses_are_written(
    tmp_path: Path, bundle: Path, key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    lines = GatedFile(tmp_path / "decisions.log")
    store = SnapshotStore(load_bundle(bundle))
    log = DecisionLog(lines, store, queue_allows=2, queue_denies=3)
    service = AuthorizationService(store, observers=[log])
    token = live_token(key, sub="alice", tenant="acme", roles=["vendor:staff"])
    allow = check_request(path="/api/v1/vendors/acme/items/1", token=token)
    deny = check_request(path="/nothing")

    service.respond(allow)  # taken by the writer, which then blocks writing it
    assert lines.entered.wait(60)
    for _ in range(4):
        service.respond(allow)  # 2 queued, 2 shed
    for _ in range(5):
        service.respond(deny)  # 3 more places kept for denies: 3 queued, 2 lost
    assert (log.allow_dropped, log.deny_dropped) == (2, 2)

    with caplog.at_level(logging.ERROR, logger="authz.audit"):
        lines.gate.set()
        log.close()

    records = read_lines(tmp_path / "decisions.log")
    outcomes = [record.get("reason") for record in records if record["type"] == "decision"]
    assert outcomes == ["allowed"] * 3 + ["no_match"] * 3
    lost = [record for record in records if record["type"] == "records_lost"]
    assert [(r["kept"], r["sheddable"]) for r in lost] == [(2, 2)]
    assert log.written == 7  # six decisions and the loss report
    assert "2 kept (deny/event) record(s) lost" in caplog.text


def test_without_overload_nothing_is_dropped(tmp_path: Path, bundle: Path) -> None:
    lines = LineFile(tmp_path / "decisions.log")
    store = SnapshotStore(load_bundle(bundle))
    log = DecisionLog(lines, store, queue_allows=1000, queue_denies=1000)
    service = AuthorizationService(store, observers=[log])
    for number in range(500):
        service.respond(check_request(path=f"/nothing/{number}"))
        if number % 100 == 0:
            deadline = time.monotonic() + 60
            while log.written < number + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
    log.close()
    assert (log.written, log.allow_dropped, log.deny_dropped) == (500, 0, 0)
    assert len(read_lines(tmp_path / "decisions.log")) == 500
