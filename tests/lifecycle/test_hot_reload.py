"""Hot reload against the real server: what is written to disk decides the next requests."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.lifecycle import revisions
from tests.lifecycle.running import running

Write = Callable[[Path, str], str]


@pytest.mark.parametrize(
    "write",
    [revisions.write_in_place, revisions.write_by_rename],
    ids=["in-place", "editor-rename"],
)
async def test_a_changed_file_decides_the_next_requests(bundle: Path, write: Write) -> None:
    async with running(bundle) as live:
        first = live.store.active_version
        assert (await live.decide()).version == first
        second = write(bundle, revisions.text(1))
        assert second != first
        await live.until_version(second)
        assert live.store.history[0].version == second
        assert live.reloader.failures == 0


async def test_configmap_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    volume = revisions.ConfigMapVolume(tmp_path / "configmap", revisions.text(0))
    async with running(volume.root) as live:
        for revision in (1, 2):
            await live.until_version(volume.update(revisions.text(revision)))
        assert live.reloader.failures == 0


async def test_an_invalid_edit_keeps_the_last_good_version(
    bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authz")
    async with running(bundle) as live:
        good = live.store.active_version
        revisions.replace(bundle, revisions.BROKEN)
        await live.until_reloads(1)
        assert live.reloader.failures == 1
        assert [str(error) for error in live.reloader.last_errors] == [revisions.BROKEN_ERROR]
        decided = await live.decide()
        assert (decided.code, decided.version) == (0, good)
        health = health_pb2_grpc.HealthStub(live.channel)
        status = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        # Fixed again: served again.
        await live.until_version(revisions.write_in_place(bundle, revisions.text(2)))
        assert live.reloader.successes == 1
    failed = [r.getMessage() for r in caplog.records if r.name == "authz.reload"]
    assert any(f"still serving version {good}" in message for message in failed)
    assert f"  {revisions.BROKEN_ERROR}" in failed


async def test_no_check_fails_during_twenty_reloads(bundle: Path) -> None:
    async with running(bundle) as live:
        versions: Counter[str] = Counter()
        failures: list[str] = []
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                try:
                    decided = await live.decide()
                except grpc.aio.AioRpcError as exc:
                    failures.append(f"{exc.code()}: {exc.details()}")
                    continue
                versions[decided.version] += 1
                if decided.code != 0:
                    failures.append(f"denied: {decided.reason}")

        calls = asyncio.create_task(client())
        expected = [live.store.active_version]
        for revision in range(1, 21):
            expected.append(revisions.write_in_place(bundle, revisions.text(revision)))
            await live.until_version(expected[-1])
        stop.set()
        await calls
        assert failures == []
        assert live.reloader.failures == 0
        assert set(versions) <= set(expected)
        assert expected[-1] in versions
        assert sum(versions.values()) > 20


async def test_reload_now_reports_a_valid_bundle(bundle: Path) -> None:
    async with running(bundle, watch=False) as live:
        before = live.store.active_version
        assert await live.reloader.reload_now()  # unchanged is still a good reload
        assert live.store.active_version == before
        changed = revisions.write_in_place(bundle, revisions.text(1))
        assert (await live.decide()).version == before  # not watched
        assert await live.reloader.reload_now()
        assert (await live.decide()).version == changed
        (bundle / revisions.FILE).write_text(revisions.BROKEN)
        assert not await live.reloader.reload_now()
        assert (await live.decide()).version == changed
        assert (live.reloader.successes, live.reloader.failures) == (2, 1)
