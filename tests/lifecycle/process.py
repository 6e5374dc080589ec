"""``python -m authz serve`` as a child process, its stderr read line by line."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

SERVING_ON = re.compile(r"serving on 127\.0\.0\.1:(\d+)")


class LogLines:
    """The lines of a stream (a process's stderr), read on a thread so waiting can time out."""

    def __init__(self, stream: Iterator[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.reader.start()

    def _pump(self, stream: Iterator[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 15) -> re.Match[str]:
        """The first match of ``pattern`` in the lines not read yet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            self.seen.append(line)
            if match := pattern.search(line):
                return match
        raise AssertionError(f"no {pattern.pattern!r} in:\n{''.join(self.seen)}")


class Served:
    """A server process (a context manager); ``wait_for`` reads its log for a pattern."""

    def __init__(
        self,
        bundle: Path,
        *flags: str,
        env: dict[str, str] | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        """``env``: the whole environment (default: this one); ``cpus``: the CPU affinity."""
        argv = [sys.executable, "-m", "authz", "serve", "--policies", str(bundle)]
        self.process = subprocess.Popen(
            [*argv, "--listen", "127.0.0.1:0", "--grace", "1", *flags],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
            start_new_session=True,  # its own process group: see __exit__
        )
        assert self.process.stderr is not None
        self.log = LogLines(self.process.stderr)
        self.lines, self.seen, self.reader = self.log.lines, self.log.seen, self.log.reader
        serving = self.wait_for(SERVING_ON)
        self.banner = serving.string
        self.port = int(serving.group(1))

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        # The whole group: children (workers) that outlived a killed parent would
        # otherwise hold the log pipe open and the reader would never finish.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=15)
        self.reader.join(timeout=5)
        assert self.process.stderr is not None
        self.process.stderr.close()

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 15) -> re.Match[str]:
        """The first match of ``pattern`` in the log lines not read yet."""
        return self.log.wait_for(pattern, timeout)

    def stop(self) -> int:
        """SIGTERM and the exit status (killed if it does not stop in time)."""
        self.process.terminate()
        return self.process.wait(timeout=15)
