"""The snapshot store's records and the state directory that keeps them across restarts.

:class:`Version` and :class:`RuntimeLockdown` are what :mod:`authz.store`
remembers (and re-exports). A state directory holds::

    state.json          history, pin and runtime lockdowns (mode 0600, replaced atomically)
    bundles/<hex>/      a copy of the files of each version in the history (<hex>: its sha256)

A bundle's version is the hash of its files, so a copy is checked twice: its
files must hash to the version when they are copied, and the snapshot rebuilt
from them must have that version again. A pin whose copy is missing is dropped
at start (with an error logged) rather than served from anything else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from authz.errors import AuthzError, BundleError
from authz.policy.bundle import Snapshot, bundle_version
from authz.policy.lockdown import Lockdown
from authz.policy.matchers import StringMatcher

__all__ = ["RuntimeLockdown", "SavedState", "StateDir", "StateError", "Version"]

_log = logging.getLogger("authz.store")
_FORMAT = 1
_VERSION = re.compile(r"sha256:([0-9a-f]{64})\Z")


class StateError(AuthzError):
    """The state file cannot be read back; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Version:
    """One entry of the history: a bundle version that was loaded."""

    version: str  # "sha256:…"
    loaded_at: datetime  # UTC
    files: tuple[str, ...]
    applied: bool  # False if it was recorded while pinned


@dataclass(frozen=True, slots=True)
class RuntimeLockdown:
    """A lockdown switched on at run time (not from the bundle)."""

    lockdown: Lockdown
    actor: str  # who switched it on, e.g. the admin token's name
    since: datetime


@dataclass(frozen=True, slots=True)
class SavedState:
    """What a state directory held at start."""

    history: tuple[Version, ...] = ()
    pinned: str | None = None
    lockdowns: tuple[RuntimeLockdown, ...] = ()


class StateDir:
    """Reads and writes one state directory; created (mode 0700) if missing."""

    def __init__(self, root: Path, bundle_dir: Path | None) -> None:
        self.file = root / "state.json"
        self.bundles = root / "bundles"
        self.bundle_dir = bundle_dir
        self.bundles.mkdir(mode=0o700, parents=True, exist_ok=True)

    def load(self) -> SavedState:
        """The saved state; empty if there is none yet."""
        try:
            text = self.file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return SavedState()
        except OSError as exc:
            raise StateError(f"{self.file}: {exc.strerror}") from exc
        try:
            return _decode(json.loads(text))
        except (ValueError, TypeError, KeyError, AttributeError, re.error) as exc:
            # Refusing to start beats silently lifting a runtime lockdown.
            raise StateError(
                f"{self.file}: unreadable ({type(exc).__name__}: {exc}); "
                "fix it or move it away to start without history, pin or runtime lockdowns"
            ) from exc

    def save(
        self,
        history: tuple[Version, ...],
        pinned: str | None,
        lockdowns: tuple[RuntimeLockdown, ...],
        keep: Collection[str],
    ) -> None:
        """Replace the state file, then drop the copies of versions not in ``keep``."""
        state = {
            "format": _FORMAT,
            "pinned": pinned,
            "history": [_encode_version(entry) for entry in history],
            "lockdowns": [_encode_lockdown(entry) for entry in lockdowns],
        }
        _write_atomically(self.file, json.dumps(state, indent=1).encode())
        kept = {_hex(version) for version in keep}
        for child in self.bundles.iterdir():
            if child.name not in kept:
                shutil.rmtree(child, ignore_errors=True)

    def archive(self, snapshot: Snapshot) -> None:
        """Keep a copy of ``snapshot``'s files, read again from the bundle directory.

        Not kept (logged): files outside the bundle directory, or files that
        changed since they were loaded (their hash is no longer the version).
        """
        target = self.bundles / _hex(snapshot.version)
        if self.bundle_dir is None or target.is_dir():
            return
        contents: dict[str, bytes] = {}
        for relative in snapshot.files:
            parts = PurePosixPath(relative)
            if parts.is_absolute() or ".." in parts.parts:
                _log.warning(
                    "version %s not kept: %s is outside the bundle", snapshot.version, relative
                )
                return
            try:
                contents[relative] = (self.bundle_dir / relative).read_bytes()
            except OSError as exc:
                _log.info("version %s not kept: %s: %s", snapshot.version, relative, exc.strerror)
                return
        if bundle_version(contents) != snapshot.version:
            _log.info(
                "version %s not kept: its files changed since it was loaded", snapshot.version
            )
            return
        # Not synced file by file: a copy cut short by a crash no longer hashes to its
        # version and is refused when rebuilt, which is all a lost copy can cost.
        scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.bundles))
        for relative, data in contents.items():
            path = scratch / relative
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
        try:
            scratch.rename(target)
        except OSError:  # kept meanwhile by another process sharing the directory
            shutil.rmtree(scratch, ignore_errors=True)

    def rebuild(self, version: str, loader: Callable[[Path], Snapshot]) -> Snapshot | None:
        """The snapshot of ``version`` from its copy; None (logged) if that is impossible."""
        copy = self.bundles / _hex(version)
        if not copy.is_dir():
            return None
        try:
            snapshot = loader(copy)
        except BundleError as exc:
            _log.error("the copy of %s does not load: %s", version, "; ".join(map(str, exc.errors)))
            return None
        if snapshot.version != version:
            _log.error("the copy of %s loads as %s: not used", version, snapshot.version)
            return None
        return snapshot


def _hex(version: str) -> str:
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"not a bundle version: {version!r}")
    return match.group(1)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write a temporary file (mkstemp: mode 0600) beside ``path``, then rename it over."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _encode_version(entry: Version) -> dict[str, Any]:
    return {
        "version": entry.version,
        "loaded_at": entry.loaded_at.isoformat(),
        "files": list(entry.files),
        "applied": entry.applied,
    }


def _encode_lockdown(entry: RuntimeLockdown) -> dict[str, Any]:
    lockdown = entry.lockdown
    return {
        "name": lockdown.name,
        "tenant": lockdown.tenant,
        "reason": lockdown.reason,
        "exempt_paths": _encode_matcher(lockdown.exempt_paths),
        "exempt_principals": _encode_matcher(lockdown.exempt_principals),
        "expires": lockdown.expires.isoformat() if lockdown.expires else None,
        "actor": entry.actor,
        "since": entry.since.isoformat(),
    }


def _encode_matcher(matcher: StringMatcher | None) -> dict[str, Any] | None:
    """A compiled matcher as its parts: the Lockdown keeps no source patterns."""
    if matcher is None:
        return None
    return {
        "exact": sorted(matcher.exact),
        "prefixes": list(matcher.prefixes),
        "suffixes": list(matcher.suffixes),
        "present": matcher.present,
        "templates": [template.pattern for template in matcher.templates],
    }


def _decode(state: Any) -> SavedState:
    if state.get("format") != _FORMAT:
        raise ValueError(f"format {state.get('format')!r}, expected {_FORMAT}")
    pinned = state["pinned"]
    if pinned is not None:
        _hex(pinned)
    history = tuple(
        Version(
            version=_checked(entry["version"]),
            loaded_at=_time(entry["loaded_at"]),
            files=tuple(str(name) for name in entry["files"]),
            applied=bool(entry["applied"]),
        )
        for entry in state["history"]
    )
    lockdowns = tuple(_decode_lockdown(entry) for entry in state["lockdowns"])
    return SavedState(history, pinned, lockdowns)


def _decode_lockdown(entry: dict[str, Any]) -> RuntimeLockdown:
    expires = entry["expires"]
    lockdown = Lockdown(
        name=str(entry["name"]),
        tenant=str(entry["tenant"]),
        reason=str(entry["reason"]),
        exempt_paths=_decode_matcher(entry["exempt_paths"]),
        exempt_principals=_decode_matcher(entry["exempt_principals"]),
        expires=None if expires is None else _time(expires),
    )
    return RuntimeLockdown(lockdown, str(entry["actor"]), _time(entry["since"]))


def _decode_matcher(parts: dict[str, Any] | None) -> StringMatcher | None:
    if parts is None:
        return None
    return StringMatcher(
        exact=frozenset(str(value) for value in parts["exact"]),
        prefixes=tuple(str(value) for value in parts["prefixes"]),
        suffixes=tuple(str(value) for value in parts["suffixes"]),
        present=bool(parts["present"]),
        templates=tuple(re.compile(str(pattern)) for pattern in parts["templates"]),
    )


def _checked(version: Any) -> str:
    _hex(version)
    return str(version)


def _time(text: Any) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return value
