"""/metrics on the admin API: authenticated like every admin call."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from authz.admin import AdminConfig, start_admin
from authz.telemetry import CheckCounts, Metrics
from tests.admin.client import TOKEN
from tests.admin.conftest import make_store, token_file
from tests.telemetry.scrape import scrape, value

__all__ = ["token_file"]


async def test_metrics_need_the_admin_token(bundle: Path, token_file: Path) -> None:
    store, reloader = make_store(bundle)
    metrics = Metrics(CheckCounts(), store, reloader)
    config = AdminConfig(listen="127.0.0.1:0", token_file=token_file)
    server = await start_admin(store, reloader, config, metrics=metrics)
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
                async with session.get(url, headers=headers) as refused:
                    assert refused.status == 401
                    assert "authz_" not in await refused.text()
        text = await scrape(url, token=TOKEN)
    finally:
        await server.stop()
    assert value(text, "authz_policy_version_info", version=store.active_version) == 1
