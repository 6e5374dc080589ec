"""The one load generator of the comparison: h2load, in closed loop and in open loop.

Every setup is driven by the same h2load over cleartext HTTP/2: a gRPC call is a POST
of one framed message with ``content-type: application/grpc``; a plain HTTP request
to Envoy is a GET with headers.

*Saturation* is closed loop (``-c`` connections x ``-m`` streams, each sending again
as soon as an answer arrives): it finds the most a setup can answer.

*Fixed rates* are open loop. ``h2load --rps`` sends on a timer, whatever the server
does, but its timer ticks at most every 10 ms and sends the whole tick's share at
once; started together, its connections also tick together. Bursts like that measure
the generator. So a rate R is split over ``C = ceil(R / 100)`` connections of R / C
requests per second each (one request per tick), and the connections are opened one
``1 / R`` apart (``-r 1 --rate-period``), which spreads their ticks evenly: one
request every ``1 / R`` overall, to h2load's 1 ms timer resolution. What shows that a
run stayed open loop is in its result: the rate at which requests were *sent*, and
the most requests in flight, which must stay below h2load's per-connection cap (at
the cap h2load would wait for answers: a closed loop that hides queueing).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load_h2load import LoadResult, LogLine, execute, percentile, read_log

__all__ = ["Measured", "OpenLoopPlan", "Request", "combined", "open_loop", "saturate"]

PER_CONNECTION_RPS = 100  # h2load's rps timer ticks at most every 10 ms
STREAMS_PER_CONNECTION = 256  # the open-loop in-flight cap, per connection


@dataclass(frozen=True, slots=True)
class Request:
    """What h2load sends (URL, headers, optional body file) and a good answer's size.

    ``ok_bytes`` is the body of one good answer as h2load counts it (for gRPC, the
    5-byte prefix and the message): a run whose data total differs held other answers.
    """

    url: str
    headers: tuple[str, ...]
    body: Path | None
    ok_bytes: int

    def argv(self) -> list[str]:
        """The URL, body and header arguments of h2load."""
        argv = [self.url]
        if self.body is not None:
            argv += ["-d", str(self.body)]
        for header in self.headers:
            argv += ["-H", header]
        return argv


@dataclass(frozen=True, slots=True)
class OpenLoopPlan:
    """How h2load offers ``rate`` requests per second for ``duration_s`` in open loop."""

    connections: int
    per_connection_rps: int
    spacing_ms: int
    requests: int

    @classmethod
    def for_rate(cls, rate: int, duration_s: float) -> OpenLoopPlan:
        """Split ``rate`` over connections of at most 100 requests per second each."""
        if rate < 1 or duration_s <= 0:
            raise ValueError("open loop: rate and duration must be positive")
        connections = math.ceil(rate / PER_CONNECTION_RPS)
        per_connection = max(1, round(rate / connections))
        per_connection_requests = max(1, round(per_connection * duration_s))
        return cls(
            connections=connections,
            per_connection_rps=per_connection,
            spacing_ms=max(1, round(1000 / rate)),
            requests=connections * per_connection_requests,
        )

    @property
    def offered_rps(self) -> int:
        """The rate actually offered (``rate`` rounded to whole requests per connection)."""
        return self.connections * self.per_connection_rps

    @property
    def in_flight_cap(self) -> int:
        """Requests in flight at which h2load would stop sending on schedule."""
        return self.connections * STREAMS_PER_CONNECTION

    def argv(self) -> list[str]:
        """The h2load options of this plan."""
        return [
            "--rps", str(self.per_connection_rps),
            "-c", str(self.connections),
            "-r", "1", "--rate-period", f"{self.spacing_ms}ms",
            "-n", str(self.requests),
            "-m", str(STREAMS_PER_CONNECTION),
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Measured:
    """One run: throughput, latency percentiles, errors, open-loop evidence.

    ``offered_rps`` is None for the closed-loop saturation run. ``errors`` counts
    requests that got no answer, a non-2xx status, or a 2xx without a good answer's
    body. The last kind is how gRPC fails: a trailers-only answer (``grpc-status``
    CANCELLED when a Python gRPC server sheds a backlog, say) has HTTP status 200 and
    no message, which h2load cannot see; such answers are counted from the bytes
    received (``unexpected_answers``, exact when each carries no body). Their
    latencies cannot be told apart and stay in the percentiles. ``payload_ok`` is
    False whenever the bytes received differ from the 2xx answers' good size.
    """

    offered_rps: int | None
    achieved_rps: float
    completed: int
    errors: int
    unexpected_answers: int
    payload_ok: bool
    p50_ms: float
    p99_ms: float
    p999_ms: float
    sent_rps: float
    max_in_flight: int
    in_flight_cap: int | None

    @property
    def stayed_open_loop(self) -> bool | None:
        """For an open-loop run: True when h2load never hit its in-flight cap."""
        if self.in_flight_cap is None:
            return None
        return self.max_in_flight < self.in_flight_cap

    def to_json(self) -> dict[str, Any]:
        """The run as plain JSON values."""
        return {
            "offered_rps": self.offered_rps,
            "achieved_rps": round(self.achieved_rps, 1),
            "completed": self.completed,
            "errors": self.errors,
            "unexpected_answers": self.unexpected_answers,
            "payload_ok": self.payload_ok,
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "p999_ms": round(self.p999_ms, 3),
            "sent_rps": round(self.sent_rps, 1),
            "max_in_flight": self.max_in_flight,
            "in_flight_cap": self.in_flight_cap,
            "stayed_open_loop": self.stayed_open_loop,
        }


def combined(rounds: Sequence[Measured]) -> dict[str, Any]:
    """Rounds at one rate as one row: medians of rates and percentiles, totals of counts.

    The median of each round's percentile keeps one round hit by a burst of background
    work on a shared machine from deciding the row; every round stays in ``rounds``.
    """
    if not rounds:
        raise ValueError("combined: no rounds")

    def median(values: Sequence[float]) -> float:
        return round(statistics.median(values), 3)

    open_loop = [run.stayed_open_loop for run in rounds]
    return {
        "offered_rps": rounds[0].offered_rps,
        "achieved_rps": median([run.achieved_rps for run in rounds]),
        "completed": sum(run.completed for run in rounds),
        "errors": sum(run.errors for run in rounds),
        "unexpected_answers": sum(run.unexpected_answers for run in rounds),
        "payload_ok": all(run.payload_ok for run in rounds),
        "p50_ms": median([run.p50_ms for run in rounds]),
        "p99_ms": median([run.p99_ms for run in rounds]),
        "p999_ms": median([run.p999_ms for run in rounds]),
        "sent_rps": median([run.sent_rps for run in rounds]),
        "max_in_flight": max(run.max_in_flight for run in rounds),
        "in_flight_cap": rounds[0].in_flight_cap,
        "stayed_open_loop": None if None in open_loop else all(open_loop),
        "rounds": [run.to_json() for run in rounds],
    }


def _max_in_flight(log: tuple[LogLine, ...]) -> int:
    events = sorted(
        [(line.start_us, 1) for line in log]
        + [(line.start_us + line.elapsed_us, -1) for line in log]
    )  # at equal times an end (-1) sorts before a start: not counted as overlapping
    current = peak = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return peak


def _sent_rps(log: tuple[LogLine, ...]) -> float:
    if len(log) < 2:
        return 0.0
    starts = [line.start_us for line in log]
    span_us = max(starts) - min(starts)
    return (len(log) - 1) * 1e6 / span_us if span_us else 0.0


def _measured(
    result: LoadResult,
    log: tuple[LogLine, ...],
    request: Request,
    offered: int | None,
    cap: int | None,
) -> Measured:
    ms = [percentile(result.latencies_us, pct) / 1000 for pct in (50, 99, 99.9)]
    expected_bytes = result.status_2xx * request.ok_bytes
    missing_bytes = max(0, expected_bytes - result.data_bytes)
    unexpected = -(-missing_bytes // request.ok_bytes) if request.ok_bytes else 0
    return Measured(
        offered_rps=offered,
        achieved_rps=result.rps,
        completed=result.status_2xx - unexpected,
        # h2load's "failed" holds 4xx/5xx answers and requests that got no answer;
        # its "succeeded" holds 2xx and 3xx.
        errors=result.failed + (result.succeeded - result.status_2xx) + unexpected,
        unexpected_answers=unexpected,
        payload_ok=result.data_bytes == expected_bytes,
        p50_ms=ms[0],
        p99_ms=ms[1],
        p999_ms=ms[2],
        sent_rps=_sent_rps(log),
        max_in_flight=_max_in_flight(log),
        in_flight_cap=cap,
    )


def _timeout(duration_s: float) -> float:
    return 3 * duration_s + 30


def saturate(
    prefix: list[str], h2load: str, request: Request, duration_s: float, clients: int,
    streams: int, log_file: Path,
) -> Measured:  # fmt: skip
    """Closed loop for ``duration_s``: ``clients`` connections x ``streams`` streams."""
    argv = [*prefix, h2load, *request.argv(), "-c", str(clients), "-m", str(streams)]
    argv += ["-D", f"{round(duration_s * 1000)}ms", "--log-file", str(log_file)]
    result = execute(argv, log_file, _timeout(duration_s))
    return _measured(result, read_log(log_file), request, None, None)


def open_loop(
    prefix: list[str], h2load: str, request: Request, plan: OpenLoopPlan, log_file: Path
) -> Measured:
    """Offer ``plan``'s rate in open loop; latencies from each request's send to its end."""
    argv = [*prefix, h2load, *request.argv(), *plan.argv(), "--log-file", str(log_file)]
    duration_s = plan.requests / plan.offered_rps
    result = execute(argv, log_file, _timeout(duration_s))
    return _measured(result, read_log(log_file), request, plan.offered_rps, plan.in_flight_cap)
