"""A one-file bundle that changes on demand: every revision is a new bundle version.

Three ways of changing it, as they happen in production: rewriting the file in
place, an editor's write-then-rename, and a Kubernetes ConfigMap volume update
(files behind a ``..data`` symlink that is swapped atomically).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from authz.policy.bundle import Snapshot, load_bundle

FILE = "policy.yaml"
POLICY = """\
apiVersion: authz/v1
kind: Policy
metadata: {name: health}
spec:
  rules:
    - name: probes
      to: [{methods: [GET], paths: ["/healthz"]}]
"""
# An invalid revision: `allow` is not an action (ALLOW is), at line 7, column 15.
BROKEN = POLICY.replace(
    '      to: [{methods: [GET], paths: ["/healthz"]}]\n', "      action: allow\n"
)
BROKEN_ERROR = f"{FILE}:7:15: spec.rules[0].action: must be ALLOW, DENY or AUDIT"


def text(revision: int) -> str:
    """The bundle's only file at ``revision``: a comment makes each one a distinct version."""
    return f"# revision {revision}\n{POLICY}"


def version_of(root: Path) -> str:
    """The version the bundle at ``root`` has now."""
    return load_bundle(root).version


def load(root: Path, revision: int) -> Snapshot:
    """Revision ``revision`` of the bundle, written in place and loaded."""
    write_in_place(root, text(revision))
    return load_bundle(root)


def write_in_place(root: Path, content: str) -> str:
    """Truncate and rewrite the file, as ``echo >`` or a plain ``open('w')`` does."""
    (root / FILE).write_text(content)
    return version_of(root)


def write_by_rename(root: Path, content: str) -> str:
    """Write a new file and rename it over the old one, as most editors save."""
    replace(root, content)
    return version_of(root)


def replace(root: Path, content: str) -> None:
    """Replace the file atomically (any content, even an invalid one)."""
    scratch = root / f".{FILE}.new"
    scratch.write_text(content)
    os.replace(scratch, root / FILE)


class ConfigMapVolume:
    """A directory laid out as kubelet mounts a ConfigMap: ``policy.yaml -> ..data/policy.yaml``."""

    def __init__(self, root: Path, content: str) -> None:
        self.root = root
        self.generation = 0
        root.mkdir(parents=True, exist_ok=True)
        self._write_generation(content)
        os.symlink(self._current(), root / "..data")
        os.symlink(f"..data/{FILE}", root / FILE)

    def update(self, content: str) -> str:
        """kubelet's atomic update: a new timestamped directory, then swap ``..data``."""
        old = self._current()
        self._write_generation(content)
        os.symlink(self._current(), self.root / "..data_tmp")
        os.replace(self.root / "..data_tmp", self.root / "..data")
        shutil.rmtree(self.root / old)
        return version_of(self.root)

    def _current(self) -> str:
        return f"..2026_11_28_00_00_{self.generation:02d}.000000001"

    def _write_generation(self, content: str) -> None:
        self.generation += 1
        directory = self.root / self._current()
        directory.mkdir()
        (directory / FILE).write_text(content)
