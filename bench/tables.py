"""Text for benchmark reports: aligned tables, µs cells, how quiet the machine was."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["quietness", "table", "us"]


def table(aligns: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns aligned ``<`` (left) or ``>`` (right), two spaces apart."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (f"{c:{a}{w}}" for c, a, w in zip(cells, aligns, widths, strict=True))
        return "  ".join(padded).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def us(stats: dict[str, Any], *keys: str) -> list[str]:
    """The ``<key>_us`` figures of ``stats``, one decimal each."""
    return [f"{stats[f'{key}_us']:.1f}" for key in keys]


def quietness(conditions: dict[str, Any]) -> str:
    """A :class:`bench.timing.Quietness` report in one line."""
    load = conditions["load_average_1m"]
    return (
        f"thread CPU / wall {conditions['cpu_over_wall']:.3f} in the timed rounds (1.000 = never "
        f"preempted); load average {load[0]} -> {load[1]}; GC collections gen0/1/2 "
        + "/".join(str(n) for n in conditions["gc_collections"])
    )
