"""Driving gRPC unary calls with h2load, and reading what it measured.

h2load speaks HTTP/2 (prior knowledge for ``http://``), so a gRPC unary call is a POST
with ``content-type: application/grpc``, ``te: trailers`` and one framed message as
the body. h2load prints throughput and status counts but no percentiles; p50/p99
come from its ``--log-file`` (one line per request: start µs, HTTP status, µs until
the end of the response). It cannot see ``grpc-status`` (a trailer), so callers check
the ``data`` byte count: a gRPC error is trailers-only and carries no data at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "H2loadError",
    "LoadResult",
    "LoadSpec",
    "LogLine",
    "ensure_h2load",
    "execute",
    "percentile",
    "read_log",
    "run",
]


class H2loadError(RuntimeError):
    """h2load is missing and cannot be installed, or its run failed."""


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """How hard and how long to push: like h2load's -D/-n, -c, -m, -t and --rps."""

    duration_s: float | None
    requests: int | None
    clients: int
    streams: int
    threads: int = 1
    rps: int | None = None  # requests per second per client; None: as fast as answered

    def __post_init__(self) -> None:
        if (self.duration_s is None) == (self.requests is None):
            raise ValueError("load: give exactly one of duration_s and requests")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("load: duration_s must be positive")
        if self.requests is not None and self.requests < self.clients:
            raise ValueError("load: requests must be at least clients")
        if min(self.clients, self.streams, self.threads) < 1:
            raise ValueError("load: clients, streams and threads must be >= 1")
        if self.threads > self.clients:
            raise ValueError("load: threads must not exceed clients")


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One h2load run: counts from its summary, latencies from its log file."""

    done: int
    succeeded: int
    failed: int
    status_2xx: int
    rps: float
    data_bytes: int
    latencies_us: tuple[int, ...]

    @property
    def p50_ms(self) -> float:
        """Median latency in milliseconds."""
        return percentile(self.latencies_us, 50) / 1000

    @property
    def p99_ms(self) -> float:
        """99th percentile latency in milliseconds."""
        return percentile(self.latencies_us, 99) / 1000


def percentile(sorted_values: tuple[int, ...], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil without floats
    return float(sorted_values[int(rank) - 1])


def ensure_h2load() -> str:
    """Path to h2load; installs Debian's nghttp2-client when running as root."""
    found = shutil.which("h2load")
    if found:
        return found
    if os.geteuid() != 0:
        raise H2loadError(
            "h2load not found; install it with: sudo apt-get install -y nghttp2-client"
        )
    print("load: installing h2load (apt-get install -y nghttp2-client)", flush=True)
    install = ["apt-get", "install", "-y", "-q", "nghttp2-client"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(install, env=env, check=False)
    found = shutil.which("h2load")
    if found is None:
        raise H2loadError("h2load still missing after apt-get install nghttp2-client")
    return found


_SUMMARY = {
    "rps": re.compile(r"finished in [\d.]+\w+, ([\d.]+) req/s"),
    "requests": re.compile(
        r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed"
    ),
    "status": re.compile(r"status codes: (\d+) 2xx"),
    "data": re.compile(r"traffic: .*?\(\d+\) headers.*?, [\d.]+\w*B \((\d+)\) data"),
}


@dataclass(frozen=True, slots=True)
class LogLine:
    """One request in h2load's ``--log-file``: when it was sent, its status, its latency.

    ``status`` is -1 for a request that failed without a response.
    """

    start_us: int
    status: int
    elapsed_us: int


def read_log(log_file: Path) -> tuple[LogLine, ...]:
    """Every line of an h2load ``--log-file``, in file order (the order requests ended)."""
    lines = []
    for line in log_file.read_text().splitlines():
        start, code, elapsed = line.split("\t")[:3]
        lines.append(LogLine(int(start), int(code), int(elapsed)))
    return tuple(lines)


def _parse(stdout: str, log_file: Path) -> LoadResult:
    found = {name: pattern.search(stdout) for name, pattern in _SUMMARY.items()}
    missing = [name for name, match in found.items() if match is None]
    if missing:
        raise H2loadError(f"cannot read h2load output ({', '.join(missing)}):\n{stdout}")
    rps, requests, status, data = (found[name] for name in ("rps", "requests", "status", "data"))
    assert rps and requests and status and data  # for mypy: checked just above
    latencies = [line.elapsed_us for line in read_log(log_file) if 200 <= line.status < 300]
    return LoadResult(
        done=int(requests[1]),
        succeeded=int(requests[2]),
        failed=int(requests[3]),
        status_2xx=int(status[1]),
        rps=float(rps[1]),
        data_bytes=int(data[1]),
        latencies_us=tuple(sorted(latencies)),
    )


def execute(argv: list[str], log_file: Path, timeout_s: float) -> LoadResult:
    """Run an h2load command line that writes ``--log-file log_file``; its result.

    ``timeout_s`` bounds the run: h2load can hang when a server stops answering or
    closes connections under it, and a benchmark must end by itself.
    """
    log_file.unlink(missing_ok=True)  # h2load would append to an old one
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise H2loadError(f"h2load did not finish within {timeout_s:g}s") from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        raise H2loadError(f"h2load exited {done.returncode}: {output}")
    return _parse(done.stdout, log_file)


def run(
    h2load: str, url: str, body: Path, spec: LoadSpec, log_file: Path, timeout_s: float = 600
) -> LoadResult:
    """Run h2load once against ``url`` POSTing ``body`` as a gRPC call."""
    argv = [
        h2load, url, "-d", str(body),
        "-H", "content-type: application/grpc", "-H", "te: trailers",
        "-c", str(spec.clients), "-m", str(spec.streams), "-t", str(spec.threads),
        "--log-file", str(log_file),
    ]  # fmt: skip
    if spec.rps is not None:
        argv += ["--rps", str(spec.rps)]
    if spec.duration_s is not None:
        argv += ["-D", f"{round(spec.duration_s * 1000)}ms"]  # h2load wants whole units
    else:
        argv += ["-n", str(spec.requests)]
    return execute(argv, log_file, timeout_s)
