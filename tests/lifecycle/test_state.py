"""SnapshotStore with a state directory: what survives a restart, and what is refused."""

from __future__ import annotations

import json
import logging
import shutil
import stat
from pathlib import Path

import pytest

from authz.decision import Reason
from authz.policy.bundle import load_bundle
from authz.store import SnapshotStore, StateError
from tests.lifecycle.clock import Clock
from tests.lifecycle.incidents import BREAK_GLASS, incident, reason
from tests.lifecycle.revisions import load


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def restart(bundle: Path, state: Path, clock: Clock | None = None) -> SnapshotStore:
    """A new store, as at start: the bundle as it is on disk now, the same state directory."""
    return SnapshotStore(
        load_bundle(bundle), state_dir=state, bundle_dir=bundle, clock=clock or Clock()
    )


def test_history_survives_a_restart(bundle: Path, state: Path) -> None:
    store = restart(bundle, state)
    store.offer(load(bundle, 1))
    before = store.history
    again = restart(bundle, state)
    assert again.history == before  # the same bundle on disk: no new entry
    again_v2 = SnapshotStore(load(bundle, 2), state_dir=state, bundle_dir=bundle)
    assert again_v2.history[1:] == before
    assert again_v2.history[0].applied


def test_the_state_file_is_private_and_readable_json(bundle: Path, state: Path) -> None:
    store = restart(bundle, state)
    store.lock(incident(), "alice")
    path = state / "state.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["pinned"] is None
    assert saved["history"][0]["version"] == store.active_version
    assert saved["lockdowns"][0]["actor"] == "alice"
    assert [p.name for p in state.iterdir()] == ["bundles", "state.json"]  # no temporary left


def test_a_pin_survives_a_restart_even_when_disk_moved_on(bundle: Path, state: Path) -> None:
    v0 = load(bundle, 0)
    store = SnapshotStore(v0, state_dir=state, bundle_dir=bundle)
    store.offer(load(bundle, 1))
    store.rollback(v0.version)
    v2 = load(bundle, 2)
    store.offer(v2)
    again = restart(bundle, state)  # the bundle on disk is v2
    assert (again.active_version, again.pinned) == (v0.version, v0.version)
    assert again.current.version == v0.version
    assert again.history[0].version == v2.version
    assert again.unpin().version == v2.version


def test_a_pin_that_cannot_be_rebuilt_is_dropped(
    bundle: Path, state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    v0 = load(bundle, 0)
    store = SnapshotStore(v0, state_dir=state, bundle_dir=bundle)
    store.offer(load(bundle, 1))
    store.rollback(v0.version)
    shutil.rmtree(state / "bundles" / v0.version.removeprefix("sha256:"))
    with caplog.at_level(logging.ERROR, logger="authz.store"):
        again = restart(bundle, state)
    assert again.pinned is None
    assert again.active_version == load_bundle(bundle).version
    assert f"pinned version {v0.version} cannot be rebuilt" in caplog.text


def test_rollback_after_a_restart_rebuilds_from_the_kept_copy(bundle: Path, state: Path) -> None:
    v0 = load(bundle, 0)
    store = SnapshotStore(v0, state_dir=state, bundle_dir=bundle)
    store.offer(load(bundle, 1))
    again = restart(bundle, state)
    rebuilt = again.rollback(v0.version)
    assert rebuilt.version == v0.version
    assert rebuilt is not v0  # rebuilt from the copy, not the one in the first store's memory


def test_kept_copies_are_bounded_like_the_history(bundle: Path, state: Path) -> None:
    store = SnapshotStore(load(bundle, 0), state_dir=state, bundle_dir=bundle, history_limit=2)
    for revision in range(1, 5):
        store.offer(load(bundle, revision))
    kept = {path.name for path in (state / "bundles").iterdir()}
    assert kept == {entry.version.removeprefix("sha256:") for entry in store.history}


def test_a_copy_is_kept_only_if_the_files_still_hash_to_the_version(
    bundle: Path, state: Path
) -> None:
    store = SnapshotStore(load(bundle, 0), state_dir=state, bundle_dir=bundle)
    offered = load(bundle, 1)
    load(bundle, 2)  # the files changed again before the offer
    store.offer(offered)
    assert not (state / "bundles" / offered.version.removeprefix("sha256:")).exists()


def test_runtime_lockdowns_survive_a_restart(bundle: Path, state: Path) -> None:
    clock = Clock()
    store = restart(bundle, state, clock)
    store.lock(incident(clock=clock), "alice")
    again = restart(bundle, state, clock)
    [entry] = again.lockdowns
    assert entry == store.lockdowns[0]  # matchers and all
    assert reason(again, "/orders") is Reason.LOCKDOWN
    assert reason(again, "/status/db") is Reason.NO_MATCH  # exempt path template
    assert reason(again, "/orders", BREAK_GLASS) is Reason.NO_MATCH  # exempt principal


def test_expired_runtime_lockdowns_are_dropped_at_restart(bundle: Path, state: Path) -> None:
    clock = Clock()
    store = restart(bundle, state, clock)
    store.lock(incident(clock=clock), "alice")
    store.lock(incident("open-ended"), "bob")
    clock.advance(hours=2)
    again = restart(bundle, state, clock)
    assert [entry.lockdown.name for entry in again.lockdowns] == ["open-ended"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param("{", "JSONDecodeError", id="not-json"),
        pytest.param('{"format": 9}', "format 9, expected 1", id="format"),
        pytest.param(
            '{"format": 1, "pinned": "../../etc", "history": [], "lockdowns": []}',
            "not a bundle version",
            id="pin-path",
        ),
        pytest.param('{"format": 1, "pinned": null}', "KeyError", id="missing"),
    ],
)
def test_an_unreadable_state_file_refuses_to_start(
    bundle: Path, state: Path, content: str, problem: str
) -> None:
    state.mkdir()
    (state / "state.json").write_text(content)
    with pytest.raises(StateError, match=r"state\.json: unreadable") as caught:
        restart(bundle, state)
    assert problem in str(caught.value)
