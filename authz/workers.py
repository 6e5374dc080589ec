"""`authz serve --workers N`: N server processes sharing the Check port, supervised.

Python runs one Check at a time per process, so a machine with more cores than
Envoy leaves idle serves more with more processes. Each worker is a whole
``authz serve`` (``--worker K``): its own snapshot, file watcher, key fetcher and
token cache, nothing shared. They listen on the same port with SO_REUSEPORT and
the kernel spreads connections over them; health is answered by the worker that
holds the connection, so SERVING always speaks for the process that decides.

The parent decides nothing and holds no policy. It reserves the port (a bound,
never listening socket, which also resolves port 0), starts the workers,
restarts one that dies (after 0.5 s, doubling up to 30 s while it keeps dying
young), forwards SIGHUP, and on SIGTERM/SIGINT drains them all. With an admin
API, the parent serves it (:mod:`authz.admin.relay`) and every call reaches every
worker through its private loopback admin port, authenticated by a token made
for this run and kept in a directory only this user can read. A scrape of the
parent's ``--metrics-listen`` (or of /metrics on its admin API) is answered with
every worker's metrics, fetched the same way and labelled ``worker="K"``
(:mod:`authz.telemetry.fleet`).

With ``--state-dir``, worker K keeps its state in ``STATE_DIR/worker-K``: the
admin calls that change state reach every worker, so the directories agree, and
a restarted worker restores its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from authz.admin_cli import Replica
from authz.config import ConfigError

if TYPE_CHECKING:
    from authz.admin import AdminConfig

__all__ = ["WorkerSpec", "parse_worker", "supervise"]

_log = logging.getLogger("authz.workers")
_FIRST_DELAY_S, _MAX_DELAY_S, _SETTLED_S = 0.5, 30.0, 30.0
_EXIT_BAD_INPUT = 2
_LOOPBACK = "127.0.0.1"
_SCRAPE_TIMEOUT_S = 3.0  # a worker slower than this is reported down for that scrape


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What the parent tells worker ``index``: its admin port and token file."""

    index: int
    admin_port: int
    token_file: Path

    def __str__(self) -> str:
        return f"{self.index}:{self.admin_port}:{self.token_file}"


def parse_worker(text: str) -> WorkerSpec:
    """``K:ADMIN_PORT:TOKEN_FILE`` (``--worker``) as a :class:`WorkerSpec`."""
    index, _, rest = text.partition(":")
    port, _, token_file = rest.partition(":")
    if not index.isdigit() or not port.isdigit() or not token_file:
        raise ValueError(f"expected K:ADMIN_PORT:TOKEN_FILE, got {text!r}")
    return WorkerSpec(int(index), int(port), Path(token_file))


class _Slot:
    """Worker ``index``: (re)started until the pool stops."""

    def __init__(self, index: int, command: Sequence[str], token_file: Path) -> None:
        self.index = index
        self.command = command
        self.token_file = token_file
        self.process: asyncio.subprocess.Process | None = None
        self.admin_port = 0

    def replica(self) -> Replica:
        url = f"http://{_LOOPBACK}:{self.admin_port}"
        return Replica(url, f"worker-{self.index}")

    def metrics_target(self) -> tuple[str, str]:
        """Its ``worker`` label and the URL of its metrics."""
        return str(self.index), f"http://{_LOOPBACK}:{self.admin_port}/metrics"

    async def run(self, stopping: asyncio.Event) -> None:
        """Keep the worker running; raise ConfigError if its first start fails on its input."""
        delay, starts = _FIRST_DELAY_S, 0
        while not stopping.is_set():
            self.admin_port = _free_port()
            spec = WorkerSpec(self.index, self.admin_port, self.token_file)
            self.process = await asyncio.create_subprocess_exec(
                *self.command, "--worker", str(spec), stdin=subprocess.DEVNULL
            )
            started, starts = time.monotonic(), starts + 1
            _log.info("worker %d started (pid %d)", self.index, self.process.pid)
            code = await self.process.wait()
            if stopping.is_set():
                return
            if code == _EXIT_BAD_INPUT and starts == 1:
                raise ConfigError(f"workers: worker {self.index} could not start (exit {code})")
            if time.monotonic() - started >= _SETTLED_S:
                delay = _FIRST_DELAY_S
            _log.error(
                "worker %d (pid %d) exited with status %d; restarting in %.1fs",
                self.index,
                self.process.pid,
                code,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(delay * 2, _MAX_DELAY_S)

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    async def stop(self, timeout_s: float) -> None:
        """SIGTERM (the worker drains), then SIGKILL after ``timeout_s``."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            _log.error("worker %d (pid %d) did not stop; killed", self.index, process.pid)
            process.kill()
            await process.wait()


def _reserve(listen: str) -> tuple[socket.socket, str]:
    """A socket bound (not listening) to ``listen`` with SO_REUSEPORT, and HOST:PORT it holds.

    The workers bind the same port; only listening sockets get connections.
    """
    host, _, port = listen.rpartition(":")
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((bare, int(port)))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"listen: cannot bind {listen}: {exc.strerror}") from None
    return sock, f"{host}:{sock.getsockname()[1]}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class _Endpoint(Protocol):
    async def stop(self) -> None: ...


async def supervise(
    serve_argv: Sequence[str],
    workers: int,
    listen: str,
    admin: AdminConfig | None,
    grace_seconds: float,
    metrics_listen: str | None = None,
) -> None:
    """Run ``workers`` copies of ``authz serve`` (``serve_argv``: its arguments) on ``listen``
    until SIGTERM/SIGINT; ConfigError if the port, the admin API or ``metrics_listen``
    cannot be had, or the first start of a worker fails on its input."""
    reservation, bound = _reserve(listen)
    command = [sys.executable, "-m", "authz", *serve_argv, "--listen", bound]
    loop = asyncio.get_running_loop()
    with reservation, tempfile.TemporaryDirectory(prefix="authz-workers-") as private:
        token = secrets.token_hex(32)
        token_file = Path(private) / "worker-admin-token"
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(token)
        slots = [_Slot(index, command, token_file) for index in range(1, workers + 1)]
        stopping = asyncio.Event()
        endpoints = await _endpoints(slots, token, admin, metrics_listen)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        loop.add_signal_handler(signal.SIGHUP, _forward, slots, signal.SIGHUP)
        _log.info("serving on %s with %d workers", bound, workers)
        running = [asyncio.create_task(slot.run(stopping)) for slot in slots]
        stopped = asyncio.create_task(stopping.wait())
        try:
            done, _ = await asyncio.wait([stopped, *running], return_when="FIRST_COMPLETED")
            stopping.set()
            _log.info("stopping: draining %d workers", workers)
            await asyncio.gather(*(slot.stop(grace_seconds + 5) for slot in slots))
            for task in done:
                task.result()  # a worker that could not start: its ConfigError
        finally:
            for task in [stopped, *running]:
                task.cancel()
            for endpoint in endpoints:
                await endpoint.stop()
            loop.remove_signal_handler(signal.SIGHUP)
    _log.info("stopped")


async def _endpoints(
    slots: Sequence[_Slot], token: str, admin: AdminConfig | None, metrics_listen: str | None
) -> list[_Endpoint]:
    """The parent's admin API and ``--metrics-listen``, as asked, both reaching every worker."""
    if admin is None and metrics_listen is None:
        return []
    # aiohttp and the telemetry modules load only when one of them is asked for.
    from authz.telemetry.fleet import fetch, merge

    def replicas() -> list[Replica]:
        return [slot.replica() for slot in slots]

    async def exposition() -> str:
        targets = [slot.metrics_target() for slot in slots]
        return merge(await fetch(targets, token, _SCRAPE_TIMEOUT_S))

    started: list[_Endpoint] = []
    try:
        if admin is not None:
            from authz.admin.relay import start_relay

            started.append(await start_relay(admin, replicas, token, exposition))
        if metrics_listen is not None:
            from authz.telemetry.endpoint import start_metrics_listener

            started.append(await start_metrics_listener(exposition, metrics_listen))
    except ConfigError:
        for endpoint in started:
            await endpoint.stop()
        raise
    return started


def _forward(slots: Sequence[_Slot], signum: int) -> None:
    for slot in slots:
        slot.signal(signum)
