"""The store behind the real server: runtime lockdowns and a pin decide the next requests."""

from __future__ import annotations

from pathlib import Path

import grpc

from tests.engine.checks import check_request
from tests.lifecycle import revisions
from tests.lifecycle.incidents import incident
from tests.lifecycle.running import running, until

ORDERS = check_request(path="/orders")


async def test_a_runtime_lockdown_denies_the_next_request_and_release_undoes_it(
    bundle: Path,
) -> None:
    async with running(bundle) as live:
        assert (await live.decide(ORDERS)).reason == "no_match"
        live.store.lock(incident(), "alice")
        decided = await live.decide(ORDERS)
        assert (decided.code, decided.reason) == (
            grpc.StatusCode.PERMISSION_DENIED.value[0],
            "lockdown",
        )
        assert (await live.decide()).reason == "allowed"  # /healthz is exempt
        assert live.store.release("incident", "alice")
        assert (await live.decide(ORDERS)).reason == "no_match"


async def test_a_pin_holds_across_reloads_and_restarts(bundle: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with running(bundle, state_dir=state) as live:
        first = live.store.active_version
        second = revisions.write_in_place(bundle, revisions.text(1))
        await live.until_version(second)
        live.store.rollback(first)
        assert (await live.decide()).version == first
        third = revisions.write_in_place(bundle, revisions.text(2))
        await until(lambda: live.store.history[0].version == third)
        assert (await live.decide()).version == first  # recorded, not applied
        live.store.lock(incident(), "alice")
    async with running(bundle, state_dir=state) as live:
        assert live.store.pinned == first
        assert (await live.decide()).version == first
        assert (await live.decide(ORDERS)).reason == "lockdown"
        live.store.unpin()
        assert (await live.decide()).version == third
