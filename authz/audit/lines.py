"""Where JSON lines go: stdout, or a file rotated by size. Used from one writer thread."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from authz.audit.config import STDOUT

__all__ = ["LineFile", "open_lines"]


class LineFile:
    """Appends lines to ``path``; past ``max_bytes`` it becomes PATH.1 (PATH.1 becomes
    PATH.2, …, keeping ``backups``) and a new PATH is started. ``max_bytes`` None: never
    rotated. Files are created mode 600: records name people and workloads."""

    def __init__(self, path: Path, max_bytes: int | None = None, backups: int = 0) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._file = self._open()
        self._size = self._file.tell()

    def _open(self) -> TextIO:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(descriptor, "a", encoding="utf-8")

    def write(self, text: str) -> None:
        """Write whole lines (``text`` ends with a newline), rotating first if they would
        not fit; a line is never split across two files."""
        size = len(text.encode("utf-8")) if not text.isascii() else len(text)
        if self.max_bytes is not None and self._size and self._size + size > self.max_bytes:
            self._rotate()
        self._file.write(text)
        self._size += size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        for number in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{number}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{number + 1}"))
        if self.backups:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self._open()
        self._size = 0


class _Stdout:
    """Standard output, as a line file (never rotated, never closed)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


def open_lines(target: str, max_bytes: int | None = None, backups: int = 0) -> LineFile | _Stdout:
    """``-`` (stdout) or a file path, opened now so that a bad path stops the start."""
    if target == STDOUT:
        return _Stdout(sys.stdout)
    return LineFile(Path(target), max_bytes, backups)
