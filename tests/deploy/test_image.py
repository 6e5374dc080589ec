"""The container image: the Dockerfile, its build context and its pinned dependencies.

The Dockerfile is read with BuildKit's own parser (the ``dockerfile`` package) and
linted with hadolint; no image is built here. constraints.txt must pin exactly
authz's runtime dependency closure, each pin within pyproject.toml's range.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import dockerfile
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.manifests import REPO, Manifest, one

DOCKERFILE = REPO / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _stages() -> list[list[Any]]:
    """The Dockerfile's instructions, one list per stage (ARGs before the first FROM dropped)."""
    stages: list[list[Any]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    return stages


def _args() -> dict[str, str]:
    """Global ARG defaults."""
    found = {}
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            break
        if command.cmd == "ARG":
            name, _, value = command.value[0].partition("=")
            found[name] = value
    return found


def _only(stage: list[Any], cmd: str) -> Any:
    (command,) = [c for c in stage if c.cmd == cmd]
    return command


def _hadolint(path: Path) -> list[dict[str, Any]]:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary is not None, "hadolint is not installed in the virtualenv"
    result = subprocess.run(
        [binary, "--no-color", "--format", "json", str(path)],
        capture_output=True, text=True, check=False, timeout=60, cwd=path.parent,
    )  # fmt: skip
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return findings


def test_hadolint_finds_nothing() -> None:
    assert _hadolint(DOCKERFILE) == []


def test_hadolint_would_catch_an_unpinned_root_image(tmp_path: Path) -> None:
    worse = DOCKERFILE.read_text().replace(
        "ARG PYTHON_IMAGE=python:3.11", "ARG PYTHON_IMAGE_UNUSED=python:3.11"
    )
    worse = worse.replace("FROM ${PYTHON_IMAGE} AS build", "FROM python:latest AS build")
    worse = worse.replace("USER 10001:10001", "USER root")
    (tmp_path / "Dockerfile").write_text(worse)
    codes = {finding["code"] for finding in _hadolint(tmp_path / "Dockerfile")}
    assert {"DL3007", "DL3002"} <= codes


def test_the_base_image_is_pinned_to_the_python_the_project_needs() -> None:
    image = _args()["PYTHON_IMAGE"]
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image)
    assert match, f"base image not pinned to a full version: {image}"
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert f"{match.group(1)}.{match.group(2)}" == minimum
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        assert stage[0].value[0] == "${PYTHON_IMAGE}"


def test_the_runtime_stage_runs_authz_as_the_deployments_user(base: list[Manifest]) -> None:
    runtime = _stages()[-1]
    user = _only(runtime, "USER").value[0]
    assert re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", user), f"USER must be numeric: {user}"
    context = one(base, "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert user == f"{context['runAsUser']}:{context['runAsGroup']}"
    entrypoint, cmd = _only(runtime, "ENTRYPOINT"), _only(runtime, "CMD")
    assert entrypoint.json and list(entrypoint.value) == ["authz"]
    assert cmd.json and cmd.value[0] == "serve"
    listen = cmd.value[list(cmd.value).index("--listen") + 1]
    assert listen == "0.0.0.0:9191"


def test_the_runtime_stage_only_copies_the_virtualenv() -> None:
    runtime = _stages()[-1]
    assert {c.cmd for c in runtime} <= {"FROM", "RUN", "COPY", "ENV", "USER", "EXPOSE",
                                        "ENTRYPOINT", "CMD"}  # fmt: skip
    (copy,) = [c for c in runtime if c.cmd == "COPY"]
    assert copy.flags == ("--from=build",)
    assert list(copy.value) == ["/opt/authz", "/opt/authz"]
    for run in (c for c in runtime if c.cmd == "RUN"):
        # A user is created; nothing is installed (no package manager, no compiler).
        assert not re.search(r"\b(apt-get|apt|pip|gcc|cc|make)\b", run.value[0]), run.value


def test_the_build_context_holds_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the build context is an allowlist"
    included = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    (build, *_) = _stages()
    copied = [src for c in build if c.cmd == "COPY" for src in c.value[:-1]]
    assert set(copied) == included
    for source in copied:
        assert (REPO / source).exists(), source
    assert not any(fnmatch.fnmatch(".venv", p.removeprefix("!")) for p in patterns[1:])


def _runtime_closure() -> set[str]:
    """Canonical names of authz's runtime dependencies, transitively (installed metadata)."""
    closure: set[str] = set()
    pending: list[tuple[str, tuple[str, ...]]] = [
        (req, ()) for req in importlib.metadata.requires("authz") or []
    ]
    while pending:
        text, extras = pending.pop()
        requirement = Requirement(text)
        environments: list[dict[str, str]] = [{"extra": e} for e in extras] or [{"extra": ""}]
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate(env) for env in environments):
            continue
        name = canonicalize_name(requirement.name)
        if name in closure:
            continue
        closure.add(name)
        nested = tuple(requirement.extras)
        pending += [(req, nested) for req in importlib.metadata.requires(name) or []]
    return closure


def _pins() -> dict[str, dict[str, Version]]:
    """constraints.txt's pins by section (``runtime``, ``build backend``), by canonical name."""
    sections: dict[str, dict[str, Version]] = {}
    current = None
    for line in (REPO / "constraints.txt").read_text().splitlines():
        heading = re.fullmatch(r"# (runtime|build backend)\b.*", line)
        if heading:
            current = sections.setdefault(heading.group(1), {})
        elif line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            assert current is not None, f"constraints.txt: {line!r} is under no heading"
            current[canonicalize_name(name)] = Version(version)
    return sections


def test_constraints_pin_exactly_the_runtime_closure() -> None:
    assert set(_pins()["runtime"]) == _runtime_closure()


@pytest.mark.parametrize(
    "requirement",
    PYPROJECT["project"]["dependencies"],
    ids=lambda r: Requirement(r).name,
)
def test_each_runtime_pin_is_within_the_projects_range(requirement: str) -> None:
    parsed = Requirement(requirement)
    pinned = _pins()["runtime"][canonicalize_name(parsed.name)]
    assert parsed.specifier.contains(pinned, prereleases=True), (parsed, pinned)


def test_the_build_backend_is_pinned_within_the_build_system() -> None:
    (requirement,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    pins = _pins()["build backend"]
    assert set(pins) == {canonicalize_name(requirement.name)}
    assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)])
