"""SnapshotStore in memory: offer, history, rollback and pin, runtime lockdowns."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest

from authz.decision import Reason
from authz.engine import decide
from authz.policy.bundle import load_bundle
from authz.store import SnapshotStore
from tests.engine.checks import attributes
from tests.engine.shop import install_shop
from tests.lifecycle.clock import Clock
from tests.lifecycle.incidents import BREAK_GLASS, incident, reason
from tests.lifecycle.revisions import load
from tests.policy.bundles import NOW, SigningKey


def test_starts_with_the_initial_snapshot(bundle: Path) -> None:
    initial = load_bundle(bundle)
    clock = Clock()
    store = SnapshotStore(initial, clock=clock)
    assert store.current is initial
    assert store.active_version == initial.version
    assert store.pinned is None
    assert store.lockdowns == ()
    [entry] = store.history
    assert (entry.version, entry.loaded_at, entry.files, entry.applied) == (
        initial.version,
        clock.now,
        ("policy.yaml",),
        True,
    )


def test_offer_applies_a_new_version_and_records_it(bundle: Path) -> None:
    store = SnapshotStore(load(bundle, 0))
    newer = load(bundle, 1)
    assert store.offer(newer)
    assert store.current is newer
    assert [entry.version for entry in store.history] == [newer.version, store.history[1].version]
    assert all(entry.applied for entry in store.history)


def test_offering_the_active_version_again_is_a_no_op(bundle: Path) -> None:
    initial = load(bundle, 0)
    store = SnapshotStore(initial)
    assert not store.offer(load_bundle(bundle))
    assert store.current is initial
    assert len(store.history) == 1


def test_rollback_pins_until_unpinned(bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="authz.store")
    v0 = load(bundle, 0)
    store = SnapshotStore(v0)
    v1 = load(bundle, 1)
    store.offer(v1)
    assert store.rollback(v0.version) is v0
    assert (store.current, store.pinned) == (v0, v0.version)
    v2 = load(bundle, 2)
    assert not store.offer(v2)  # recorded, not applied
    assert not store.offer(load_bundle(bundle))  # the same again: nothing new
    assert store.current is v0
    assert [(entry.version, entry.applied) for entry in store.history] == [
        (v2.version, False),
        (v1.version, True),
        (v0.version, True),
    ]
    assert store.unpin() is v2
    assert (store.current, store.pinned) == (v2, None)
    assert store.unpin() is v2  # not pinned: nothing to do
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"rolled back to {v0.version}" in message for message in messages)
    assert any(f"recorded version {v2.version} without applying" in m for m in messages)
    assert any(f"unpinned {v0.version}" in message for message in messages)


def test_the_pinned_version_on_disk_again_is_what_unpin_keeps(bundle: Path) -> None:
    v0 = load(bundle, 0)
    store = SnapshotStore(v0)
    store.offer(load(bundle, 1))
    store.rollback(v0.version)
    assert not store.offer(load(bundle, 0))  # someone reverted the files
    assert len(store.history) == 2
    assert store.unpin().version == v0.version


def test_rollback_to_an_unknown_version(bundle: Path) -> None:
    store = SnapshotStore(load(bundle, 0))
    with pytest.raises(KeyError, match=r"sha256:0+' is not among the last 20 loaded versions"):
        store.rollback("sha256:" + "0" * 64)


def test_history_is_bounded(bundle: Path) -> None:
    first = load(bundle, 0)
    store = SnapshotStore(first, history_limit=3)
    offered = [load(bundle, revision) for revision in range(1, 5)]
    for snapshot in offered:
        store.offer(snapshot)
    assert [entry.version for entry in store.history] == [s.version for s in reversed(offered)][:3]
    with pytest.raises(KeyError, match="not among the last 3"):
        store.rollback(first.version)
    assert store.rollback(offered[1].version) is offered[1]


def test_history_limit_must_be_positive(bundle: Path) -> None:
    with pytest.raises(ValueError, match="history_limit"):
        SnapshotStore(load_bundle(bundle), history_limit=0)


def test_a_runtime_lockdown_is_merged_into_the_current_snapshot(bundle: Path) -> None:
    clock = Clock()
    initial = load_bundle(bundle)
    store = SnapshotStore(initial, clock=clock)
    store.lock(incident(), "alice")
    current = store.current
    assert current is store.current  # published once, read as is
    assert current.version == initial.version
    assert [entry.lockdown.name for entry in store.lockdowns] == ["incident"]
    assert (store.lockdowns[0].actor, store.lockdowns[0].since) == ("alice", clock.now)
    assert reason(store, "/orders") is Reason.LOCKDOWN
    assert reason(store, "/healthz") is Reason.ALLOWED  # exempt, then allowed by the rule
    assert reason(store, "/orders", BREAK_GLASS) is Reason.NO_MATCH  # exempt, no rule
    assert initial.lockdowns == ()  # the bundle's snapshot is untouched


def test_runtime_lockdowns_survive_a_new_bundle(bundle: Path) -> None:
    store = SnapshotStore(load(bundle, 0))
    store.lock(incident(), "alice")
    store.offer(load(bundle, 1))
    assert reason(store, "/orders") is Reason.LOCKDOWN


def test_lock_replaces_a_lockdown_of_the_same_name(bundle: Path) -> None:
    store = SnapshotStore(load_bundle(bundle))
    store.lock(incident(tenant="acme"), "alice")
    store.lock(incident("other"), "bob")
    store.lock(incident(), "carol")
    assert [(e.lockdown.name, e.actor) for e in store.lockdowns] == [
        ("other", "bob"),
        ("incident", "carol"),
    ]
    assert len(store.current.lockdowns) == 2


def test_release(bundle: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="authz.store")
    initial = load_bundle(bundle)
    store = SnapshotStore(initial)
    store.lock(incident(), "alice")
    assert store.release("incident", "bob")
    assert not store.release("incident", "bob")
    assert store.lockdowns == ()
    assert store.current is initial
    assert reason(store, "/orders") is Reason.NO_MATCH
    messages = [record.getMessage() for record in caplog.records]
    on = "runtime lockdown 'incident' on by alice: INC-4711 (tenant every tenant, expires never)"
    assert on in messages
    assert "runtime lockdown 'incident' released by bob" in messages


def test_expired_runtime_lockdowns_are_dropped_on_the_next_change(bundle: Path) -> None:
    clock = Clock()
    store = SnapshotStore(load_bundle(bundle), clock=clock)
    store.lock(incident("short", clock=clock), "alice")
    clock.advance(hours=2)
    store.lock(incident("later"), "bob")
    assert [entry.lockdown.name for entry in store.lockdowns] == ["later"]


def test_a_snapshot_dropped_from_the_history_needs_no_cyclic_gc(tmp_path: Path) -> None:
    """The server exempts snapshots from the cyclic GC (authz.reload.exempt_from_gc),
    which is only safe while a used snapshot holds no reference cycle."""
    key = SigningKey.generate(tmp_path)
    root = install_shop(tmp_path / "shop", key)
    store = SnapshotStore(load_bundle(root), history_limit=1)
    token = key.token(sub="alice", tenant="acme", roles=["vendor:staff"])
    for path in ("/api/v1/vendors/acme/items/1", "/api/v1/vendors/globex/items/1", "/%2F"):
        decide(store.current, attributes(path=path, token=token), NOW)
    with (root / "tenancy.yaml").open("a") as tenancy:
        tenancy.write("# changed\n")
    newer = load_bundle(root)
    gc.collect()
    store.offer(newer)  # the first snapshot is dropped here
    assert gc.collect() == 0
