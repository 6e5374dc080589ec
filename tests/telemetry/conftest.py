"""Fixtures of the telemetry tests: the shop bundle and its key, as the server tests use them."""

from __future__ import annotations

from tests.server.conftest import bundle, key

__all__ = ["bundle", "key"]
