"""Fixtures of the audit tests: the shop bundle and the key its issuer trusts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.server.conftest import bundle, key

__all__ = ["bundle", "key", "read_lines"]


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of a log file."""
    return [json.loads(line) for line in path.read_text().splitlines()]
