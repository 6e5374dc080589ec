"""Reading /metrics in tests: the exposition as samples, and promtool, which must be installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import aiohttp

Labels = frozenset[tuple[str, str]]

_SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> dict[tuple[str, Labels], float]:
    """Every sample of an exposition, by name and label set."""
    found: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.fullmatch(line)
        assert match is not None, line
        labels = frozenset(_LABEL.findall(match["labels"] or ""))
        found[(match["name"], labels)] = float(match["value"])
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The value of the one sample ``name{labels}``."""
    return samples(text)[(name, frozenset(labels.items()))]


async def scrape(url: str, token: str | None = None) -> str:
    """GET ``url`` (a /metrics endpoint); its text, which must be the 0.0.4 text format."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await response.text()


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    """Run promtool; its output. A missing promtool fails the test: `make test` installs it."""
    path = shutil.which("promtool")
    assert path is not None, "promtool not found: `make promtool` installs Debian's prometheus"
    result = subprocess.run(
        [path, *args], input=stdin, capture_output=True, text=True, cwd=cwd, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr
