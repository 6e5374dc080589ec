"""Burst counting holds up when many sources appear at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authz.audit.events import BurstWatch, SecurityEvents
from authz.decision import Decision, Reason
from authz.observe import Checked
from authz.request import from_check_request
from tests.engine.checks import check_request


class Collected:
    """The security-event stream, as a list."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def offer(self, record: Any, *, kept: bool) -> None:
        self.records.append(record)


def _invalid_token_from(address: str) -> Checked:
    attributes = from_check_request(check_request(path="/", source=(address, 40000)))
    decision = Decision(Reason.INVALID_TOKEN)
    return Checked(decision, "id", "v1", attributes, datetime.now(UTC), 0, 1000)


def test_a_spray_of_new_sources_does_not_reset_a_busy_sources_count() -> None:
    stream = Collected()
    watch = BurstWatch(
        SecurityEvents((stream,)), threshold=5, window_seconds=60, clock=lambda: 0.0, max_sources=4
    )
    for _ in range(4):
        watch.checked(_invalid_token_from("10.0.0.66"))
    for n in range(10):  # more sources than tracked, all within the window
        watch.checked(_invalid_token_from(f"10.1.0.{n}"))
    assert stream.records == []

    watch.checked(_invalid_token_from("10.0.0.66"))

    (event,) = stream.records
    assert (event["event"], event["count"], event["source_address"]) == (
        "invalid_token_burst",
        5,
        "10.0.0.66",
    )
