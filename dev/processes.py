"""Child processes of the dev stack: stopping them gracefully, then firmly."""

from __future__ import annotations

import subprocess

__all__ = ["stop"]


def stop(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    """SIGTERM (a graceful stop), then SIGKILL after ``timeout_s``; the exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
