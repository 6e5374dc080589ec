"""kind: Tenancy — where the requested tenant comes from, and who may cross tenants."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from authz.errors import PolicyError
from authz.policy.matchers import compile_path_template, host_pattern, path_template_problem
from authz.policy.reader import Reader
from authz.policy.source import Document, Path

__all__ = ["Tenancy", "compile_tenancy"]

_PLACEHOLDER = "{tenant}"
_LABEL = re.compile(r"[a-z0-9*]([a-z0-9-]*[a-z0-9])?\Z")


@dataclass(frozen=True, slots=True)
class Target:
    """One ``target`` entry: exactly one of a path template, a host template or a header."""

    path: re.Pattern[str] | None = None
    host: re.Pattern[str] | None = None
    header: str | None = None

    def tenant(self, path: str, host: str, headers: Mapping[str, str]) -> str:
        """The tenant this entry reads from the request, or ''."""
        if self.path is not None:
            match = self.path.match(path)
            return match.group("tenant") if match else ""
        if self.host is not None:
            match = self.host.match(host)
            return match.group("tenant") if match else ""
        return headers.get(self.header or "", "").strip()


@dataclass(frozen=True, slots=True)
class Tenancy:
    """How the *target* tenant of a request is found; see spec §3."""

    targets: tuple[Target, ...] = ()
    platform_roles: frozenset[str] = frozenset()

    def target(self, path: str, host: str, headers: Mapping[str, str]) -> str:
        """The first non-empty tenant any target yields (path '' for TCP checks)."""
        for target in self.targets:
            if (target.path is not None and not path) or (target.host is not None and not host):
                continue
            tenant = target.tenant(path, host, headers)
            if tenant:
                return tenant
        return ""


def compile_tenancy(document: Document, errors: list[PolicyError]) -> Tenancy:
    """Compile a Tenancy document."""
    reader = Reader(document, errors)
    spec = reader.mapping(("spec",), ("target", "platformRoles"), ("target",)) or {}
    targets = []
    for index in reader.items(("spec", "target")) if "target" in spec else ():
        target = _target(reader, ("spec", "target", index))
        if target is not None:
            targets.append(target)
    roles: tuple[str, ...] = ()
    if "platformRoles" in spec:
        roles = reader.strings(("spec", "platformRoles")) or ()
    return Tenancy(tuple(targets), frozenset(roles))


def _target(reader: Reader, path: Path) -> Target | None:
    spec = reader.mapping(path, ("pathTemplate", "host", "header"))
    if spec is None:
        return None
    if len(spec) != 1:
        reader.error(path, "each target needs exactly one of pathTemplate, host, header")
        return None
    (field,) = spec
    value = reader.string((*path, field))
    if value is None:
        return None
    if field == "header":
        return Target(header=value.lower())
    if value.count(_PLACEHOLDER) != 1:
        reader.error((*path, field), "must contain {tenant} exactly once")
        return None
    if field == "host":
        labels = value.lower().split(".")
        if _PLACEHOLDER not in labels or any(
            label != _PLACEHOLDER and not _LABEL.match(label) for label in labels
        ):
            reader.error((*path, field), "{tenant} must be one whole DNS label of a host name")
            return None
        return Target(host=host_pattern(value, "tenant"))
    problem = None
    if f"/{_PLACEHOLDER}/" not in value + "/":
        problem = "{tenant} must be one whole path segment"
    else:
        problem = path_template_problem(value.replace(_PLACEHOLDER, "{*}"))
    if problem is not None:
        reader.error((*path, field), problem)
        return None
    return Target(path=compile_path_template(value, "tenant"))
