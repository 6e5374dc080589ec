"""Fixtures of the audit tests: the shop bundle and the key its issuer trusts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.engine.shop import install_shop
from tests.policy.bundles import SigningKey


@pytest.fixture(scope="session")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, key: SigningKey) -> Path:
    return install_shop(tmp_path_factory.mktemp("shop") / "bundle", key)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of a log file."""
    return [json.loads(line) for line in path.read_text().splitlines()]
