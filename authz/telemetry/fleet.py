"""The metrics of `authz serve --workers N`: every worker's exposition merged into one.

Each worker counts its own Checks, reloads and key fetches, and serves them on its
private admin API. The parent answers a scrape (``--metrics-listen``, or GET
/metrics on its admin API) by fetching every worker's exposition at once and
merging them: each family's HELP and TYPE once, every sample of worker K labelled
``worker="K"``. Queries sum (counters, histogram buckets) or take the max (info,
lockdowns) over the label to see the pod as one server.

A worker that does not answer in time (restarting, stuck) leaves its samples out
and is reported by ``authz_worker_up{worker="K"} 0``: the scrape itself still
succeeds, so Prometheus' ``up`` keeps speaking for the pod, not for one worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

__all__ = ["WORKER_UP", "WorkerMetrics", "fetch", "merge"]

WORKER_UP = "authz_worker_up"
_UP_HEADER = (
    f"# HELP {WORKER_UP} Whether worker K answered this scrape (1) or not (0: its samples "
    "are missing)",
    f"# TYPE {WORKER_UP} gauge",
)
_log = logging.getLogger("authz.telemetry")


@dataclass(frozen=True, slots=True)
class WorkerMetrics:
    """What one worker answered: its exposition, or None when it did not answer."""

    worker: str
    exposition: str | None


async def fetch(
    targets: Sequence[tuple[str, str]], token: str, timeout_s: float
) -> list[WorkerMetrics]:
    """GET each ``(worker, url)`` of ``targets`` at once with the workers' bearer token;
    a worker that fails or takes longer than ``timeout_s`` has no exposition."""
    headers = {"Authorization": f"Bearer {token}"}
    limit = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(headers=headers, timeout=limit) as session:
        scraped = (_fetch_one(session, worker, url) for worker, url in targets)
        return list(await asyncio.gather(*scraped))


async def _fetch_one(session: aiohttp.ClientSession, worker: str, url: str) -> WorkerMetrics:
    try:
        async with session.get(url) as response:
            if response.status == 200:
                return WorkerMetrics(worker, await response.text())
            problem = f"status {response.status}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        problem = str(exc) or type(exc).__name__
    _log.warning("metrics: worker %s did not answer the scrape: %s", worker, problem)
    return WorkerMetrics(worker, None)


def merge(scraped: Sequence[WorkerMetrics]) -> str:
    """One exposition of every worker's samples, labelled ``worker="K"``, families in the
    order first seen, then ``authz_worker_up`` for each worker."""
    families: dict[str, tuple[list[str], list[str]]] = {}
    for answer in scraped:
        if answer.exposition is None:
            continue
        for name, (header, samples) in _families(answer.exposition).items():
            merged = families.setdefault(name, (header, []))
            merged[1].extend(_labelled(sample, answer.worker) for sample in samples)
    lines = [line for header, samples in families.values() for line in (*header, *samples)]
    lines += _UP_HEADER
    for answer in scraped:
        up = int(answer.exposition is not None)
        lines.append(f'{WORKER_UP}{{worker="{_escape(answer.worker)}"}} {up}')
    lines.append("")
    return "\n".join(lines)


def _families(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """Each family's HELP/TYPE lines and samples; a sample belongs to the family declared
    last before it (a histogram's _bucket, _sum and _count to theirs)."""
    families: dict[str, tuple[list[str], list[str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        words = line.split(" ", 3)
        if line.startswith("#"):
            if len(words) >= 3 and words[1] in ("HELP", "TYPE"):
                current = words[2]
                families.setdefault(current, ([], []))[0].append(line)
            continue
        if len(words) < 2:
            continue  # blank or not a sample
        family = current if current is not None else _sample_name(line)
        families.setdefault(family, ([], []))[1].append(line)
    return families


def _sample_name(line: str) -> str:
    return line.partition("{")[0].partition(" ")[0]


def _labelled(sample: str, worker: str) -> str:
    """``sample`` with ``worker="K"`` as its first label."""
    label = f'worker="{_escape(worker)}"'
    name = _sample_name(sample)
    rest = sample[len(name) :]
    if rest.startswith("{"):
        separator = "" if rest.startswith("{}") else ","
        return f"{name}{{{label}{separator}{rest[1:]}"
    return f"{name}{{{label}}}{rest}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
