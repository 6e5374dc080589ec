"""Which files a bundle is made of, and its version (spec §1)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from authz.policy.bundle import load_bundle
from tests.policy.bundles import ISSUER_YAML, SigningKey, policy, write_bundle

FILES = {
    "issuer.yaml": ISSUER_YAML,
    "platform/health.yaml": policy("health", "- name: ok\n  to: [{paths: [/healthz]}]"),
    "tenants/acme.yml": policy("acme", "- name: staff\n  from: [{roles: [staff]}]", tenant="acme"),
}


def _version(root: Path) -> str:
    return load_bundle(root).version


def test_version_format_and_files(tmp_path: Path, key: SigningKey) -> None:
    snapshot = load_bundle(write_bundle(tmp_path / "b", FILES, key))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", snapshot.version)
    # .yml files and nested directories are read; the jwksFile is part of the bundle.
    assert snapshot.files == (
        "issuer.yaml",
        "keys/jwks.json",
        "platform/health.yaml",
        "tenants/acme.yml",
    )
    assert [rule.id for rule in snapshot.rules.rules] == ["health/ok", "acme/staff"]


def test_same_files_same_version_in_any_directory(tmp_path: Path, key: SigningKey) -> None:
    first = _version(write_bundle(tmp_path / "one", FILES, key))
    second = _version(
        write_bundle(tmp_path / "elsewhere" / "two", dict(reversed(FILES.items())), key)
    )
    assert first == second


def test_version_is_sha256_of_the_loaded_content(tmp_path: Path) -> None:
    """Independent of the directory and of anything but (relative path, bytes)."""
    files = {"p.yaml": policy("p", "- name: r")}
    root = write_bundle(tmp_path / "b", files)
    assert _version(root) == _version(write_bundle(tmp_path / "c", files))
    digest = hashlib.sha256(root.joinpath("p.yaml").read_bytes()).hexdigest()
    assert _version(root) != "sha256:" + digest  # the path is part of the content


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda root: _append(root / "platform/health.yaml", b"\n"), id="one-byte"),
        pytest.param(lambda root: _flip(root / "keys/jwks.json"), id="jwks-file"),
        pytest.param(
            lambda root: (root / "tenants/acme.yml").rename(root / "tenants/acme.yaml"),
            id="renamed-file",
        ),
        pytest.param(
            lambda root: (root / "extra.yaml").write_text(policy("extra", "- name: r")),
            id="added-file",
        ),
    ],
)
def test_a_change_changes_the_version(
    tmp_path: Path, key: SigningKey, change: Callable[[Path], object]
) -> None:
    root = write_bundle(tmp_path / "b", FILES, key)
    before = _version(root)
    change(root)
    assert _version(root) != before


def _append(path: Path, data: bytes) -> None:
    path.write_bytes(path.read_bytes() + data)


def _flip(path: Path) -> None:
    """Same length, one byte different (inside the JSON indentation)."""
    data = path.read_bytes()
    path.write_bytes(data.replace(b"\n  ", b"\n\t ", 1))


def test_non_yaml_files_are_not_part_of_the_version(tmp_path: Path, key: SigningKey) -> None:
    root = write_bundle(tmp_path / "b", FILES, key)
    before = _version(root)
    (root / "README.md").write_text("# notes\n")
    (root / "platform" / "notes.txt").write_text("apiVersion: nope\n")
    assert _version(root) == before


def test_hidden_files_and_directories_are_skipped(tmp_path: Path, key: SigningKey) -> None:
    root = write_bundle(tmp_path / "b", FILES, key)
    before = _version(root)
    broken = "apiVersion: authz/v9\nkind: Nonsense\n"
    (root / ".draft.yaml").write_text(broken)
    (root / ".git").mkdir()
    (root / ".git" / "policy.yaml").write_text(broken)
    (root / "platform" / ".hidden").mkdir()
    (root / "platform" / ".hidden" / "x.yml").write_text(broken)
    snapshot = load_bundle(root)
    assert snapshot.version == before
    assert not any("/." in f"/{name}" for name in snapshot.files)


def test_configmap_layout_loads_each_file_once(tmp_path: Path, key: SigningKey) -> None:
    """Kubernetes: ``..<timestamp>/`` holds the files, ``..data`` links to it, and each
    file appears at the top level as a symlink through ``..data``."""
    flat = {
        "issuer.yaml": ISSUER_YAML.replace("keys/jwks.json", "jwks.json"),
        "health.yaml": FILES["platform/health.yaml"],
        "acme.yml": FILES["tenants/acme.yml"],
    }
    plain = write_bundle(tmp_path / "plain", flat)
    (plain / "jwks.json").write_bytes(key.jwks_path.read_bytes())

    mounted = tmp_path / "mounted"
    stamp = mounted / "..2026_11_28_10_00_00.123456789"
    write_bundle(stamp, flat)
    (stamp / "jwks.json").write_bytes(key.jwks_path.read_bytes())
    os.symlink(stamp.name, mounted / "..data")
    for name in (*flat, "jwks.json"):
        os.symlink(f"..data/{name}", mounted / name)

    snapshot = load_bundle(mounted)
    assert snapshot.files == ("acme.yml", "health.yaml", "issuer.yaml", "jwks.json")
    assert [rule.id for rule in snapshot.rules.rules] == ["acme/staff", "health/ok"]
    assert snapshot.version == load_bundle(plain).version
