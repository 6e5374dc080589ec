"""The event loop `authz serve` runs on: uvloop when installed, else asyncio's own.

grpc.aio, aiohttp, the file watcher's thread and the signal handlers all work on
either; uvloop makes each gRPC call cheaper (README, Performance).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from authz.config import ConfigError

__all__ = ["DEFAULT_LOOP", "LOOPS", "factory", "run"]

LOOPS = ("uvloop", "asyncio")
DEFAULT_LOOP = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"

_T = TypeVar("_T")


def factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A new-loop factory for ``name``; ConfigError if it is unknown or not installed."""
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise ConfigError("loop: uvloop is not installed (pip install uvloop)") from None
        return uvloop.new_event_loop
    raise ConfigError(f"loop: expected one of {', '.join(LOOPS)}, got {name!r}")


def run(main: Coroutine[Any, Any, _T], loop: str = DEFAULT_LOOP) -> _T:
    """``asyncio.run(main)`` on a new event loop of kind ``loop``."""
    with asyncio.Runner(loop_factory=factory(loop)) as runner:
        return runner.run(main)
