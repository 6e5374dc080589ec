"""Fixtures of the lifecycle tests: a bundle that can be changed while served."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lifecycle import revisions


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """The one-file bundle at revision 0, in its own directory."""
    root = tmp_path / "bundle"
    root.mkdir()
    revisions.write_in_place(root, revisions.text(0))
    return root
