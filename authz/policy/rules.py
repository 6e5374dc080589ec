"""kind: Policy — rules compiled into matchers and CEL programs.

A compiled :class:`Rule` keeps the routing facts the index needs (tenant,
hosts, methods) apart from the condition it evaluates per request.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from authz.cel import CelCompileError, Condition, compile_condition
from authz.errors import PolicyError
from authz.identity.peers import istio_form
from authz.policy.codegen import RuleMatcher, ToMatcher, compile_rule, compile_to
from authz.policy.matchers import (
    StringMatcher,
    path_template_problem,
    pattern_problem,
    strip_port,
)
from authz.policy.reader import Reader
from authz.policy.source import Document, Path

__all__ = ["NAME", "NAME_RULE", "Action", "Operation", "Rule", "Source", "Who", "compile_policy"]

NAME = re.compile(r"[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?\Z")
NAME_RULE = "must be lower-case letters, digits, '-', '.' or '_' (max 253)"

# field -> (slot in Who, negated, how patterns are normalised)
_SOURCE_FIELDS: dict[str, tuple[int, bool, Any]] = {
    "principals": (0, False, istio_form),
    "notPrincipals": (0, True, istio_form),
    "namespaces": (1, False, str),
    "notNamespaces": (1, True, str),
    "requestPrincipals": (2, False, str),
    "notRequestPrincipals": (2, True, str),
    "roles": (3, False, str),
    "notRoles": (3, True, str),
}
_REQUEST_PRINCIPAL, _ROLES = 2, 3
_OPERATION_FIELDS = ("methods", "notMethods", "paths", "notPaths", "hosts", "notHosts")
_RULE_FIELDS = ("name", "action", "dryRun", "from", "to", "when")


class Action(enum.Enum):
    """What a matching rule does."""

    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"


class Who(NamedTuple):
    """The caller as ``from`` entries see it (one per request)."""

    principal: str
    namespace: str
    request_principal: str
    roles: tuple[str, ...]
    authenticated: bool


@dataclass(frozen=True, slots=True)
class Source:
    """One ``from`` entry: every present field must match (see codegen.compile_from)."""

    checks: tuple[tuple[int, bool, StringMatcher], ...]  # (slot in Who, negated, patterns)
    authenticated: bool | None

    @property
    def needs_token(self) -> bool:
        """Whether only a request with a token can match this entry."""
        positive = {slot for slot, negated, _ in self.checks if not negated}
        return self.authenticated is True or bool(positive & {_REQUEST_PRINCIPAL, _ROLES})


@dataclass(frozen=True, slots=True)
class Operation:
    """One ``to`` entry: every present field must match (see codegen.compile_to)."""

    fields: dict[str, StringMatcher]  # methods, notMethods, paths, notPaths, hosts, notHosts
    exact_methods: frozenset[str] | None  # for the index; None = any method
    path_values: tuple[str, ...] | None  # the `paths` patterns, for the index


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule; ``id`` is ``<policy>/<rule>``, ``ordinal`` its bundle order."""

    id: str
    ordinal: int
    tenant: str
    action: Action
    dry_run: bool
    hosts: tuple[str, ...]
    sources: tuple[Source, ...]
    operations: tuple[Operation, ...]
    condition: Condition | None
    needs_token: bool  # asks for token attributes (spec §5 step 9)
    needs_http: bool  # only an HTTP check can match: a `to` part or a `when` on request.*
    segments: frozenset[str] | None  # first path segments it can match; None = any
    match: RuleMatcher  # the `from` and `to` parts, compiled
    match_to: ToMatcher  # the `to` part alone (spec §5 step 9)

    @property
    def methods(self) -> frozenset[str] | None:
        """The exact methods this rule can match, or None for any."""
        if not self.operations:
            return None
        found: set[str] = set()
        for operation in self.operations:
            if operation.exact_methods is None:
                return None
            found |= operation.exact_methods
        return frozenset(found)


def compile_policy(
    document: Document, errors: list[PolicyError], first: int, name: str | None
) -> list[Rule]:
    """Compile one Policy document (its metadata.name checked by the caller).

    Rule ordinals start at ``first``.
    """
    reader = Reader(document, errors)
    meta = document.value.get("metadata")
    spec = reader.mapping(("spec",), ("hosts", "rules"), ("rules",)) or {}
    tenant = ""
    if isinstance(meta, dict) and "tenant" in meta:
        tenant = _name(reader, ("metadata", "tenant"), meta) or ""
    hosts: tuple[str, ...] = ()
    if "hosts" in spec:
        hosts = tuple(strip_port(h) for h in _patterns(reader, ("spec", "hosts")) or ())
    rules: list[Rule] = []
    seen: set[str] = set()
    for index in reader.items(("spec", "rules")) if "rules" in spec else ():
        path: Path = ("spec", "rules", index)
        rule = _rule(reader, path, name or "?", tenant, hosts, first + len(rules))
        if rule is None:
            continue
        rule_name = rule.id.split("/", 1)[1]
        if rule_name in seen:
            reader.error((*path, "name"), f"duplicate rule name {rule_name!r} in this policy")
        seen.add(rule_name)
        rules.append(rule)
    return rules


def _name(reader: Reader, path: Path, meta: dict[str, Any]) -> str | None:
    if path[-1] not in meta:
        return None
    value = reader.string(path)
    if value is not None and not NAME.match(value):
        reader.error(path, NAME_RULE)
        return None
    return value


def _rule(
    reader: Reader, path: Path, policy: str, tenant: str, hosts: tuple[str, ...], ordinal: int
) -> Rule | None:
    spec = reader.mapping(path, _RULE_FIELDS, ("name",))
    if spec is None:
        return None
    name = _name(reader, (*path, "name"), spec) or "?"
    action = Action.ALLOW
    if "action" in spec:
        raw = reader.string((*path, "action"))
        if raw is not None and raw not in Action.__members__:
            reader.error((*path, "action"), "must be ALLOW, DENY or AUDIT")
        action = Action.__members__.get(raw or "", Action.ALLOW)
    dry_run = bool("dryRun" in spec and reader.boolean((*path, "dryRun")))
    sources = _entries(reader, (*path, "from"), _source) if "from" in spec else ()
    operations = _entries(reader, (*path, "to"), _operation) if "to" in spec else ()
    condition = _condition(reader, (*path, "when")) if "when" in spec else None
    reads = condition.variables if condition else ()
    needs_token = any(v.startswith("request.auth.") for v in reads) or any(
        source.needs_token for source in sources
    )
    needs_http = bool(operations) or any(v.startswith("request.") for v in reads)
    return Rule(
        f"{policy}/{name}",
        ordinal,
        tenant,
        action,
        dry_run,
        hosts,
        sources,
        operations,
        condition,
        needs_token,
        needs_http,
        _first_segments(operations),
        compile_rule(
            [(source.checks, source.authenticated) for source in sources],
            [operation.fields for operation in operations],
        ),
        compile_to([operation.fields for operation in operations]),
    )


def _entries(reader: Reader, path: Path, build: Any) -> tuple[Any, ...]:
    built = [build(reader, (*path, index)) for index in reader.items(path)]
    return tuple(entry for entry in built if entry is not None)


def _source(reader: Reader, path: Path) -> Source | None:
    spec = reader.mapping(path, (*_SOURCE_FIELDS, "authenticated"))
    if spec is None:
        return None
    if not spec:
        reader.error(path, "an empty entry matches everything; remove it or add a field")
    checks = []
    for field, (slot, negated, normalise) in _SOURCE_FIELDS.items():
        if field in spec:
            values = _patterns(reader, (*path, field))
            if values is not None:
                checks.append((slot, negated, StringMatcher.build(values, normalise)))
    authenticated = reader.boolean((*path, "authenticated")) if "authenticated" in spec else None
    return Source(tuple(checks), authenticated)


def _operation(reader: Reader, path: Path) -> Operation | None:
    spec = reader.mapping(path, _OPERATION_FIELDS)
    if spec is None:
        return None
    if not spec:
        reader.error(path, "an empty entry matches everything; remove it or add a field")
    found: dict[str, tuple[str, ...]] = {}
    for field in _OPERATION_FIELDS:
        if field in spec:
            if field.endswith("aths"):
                found[field] = reader.strings((*path, field)) or ()
            else:
                found[field] = _patterns(reader, (*path, field)) or ()
    for field in ("methods", "notMethods"):
        for index, method in enumerate(found.get(field, ())):
            if method != method.upper():
                reader.error(
                    (*path, field, index), f"methods are upper case: use {method.upper()!r}"
                )
    for field in ("paths", "notPaths"):
        for index, value in enumerate(found.get(field, ())):
            problem = _path_problem(value)
            if problem:
                reader.error((*path, field, index), problem)

    fields = {
        field: StringMatcher.build(
            values,
            strip_port if field.lower().endswith("hosts") else str,
            templates=field.lower().endswith("paths"),
        )
        for field, values in found.items()
    }
    methods = found.get("methods")
    exact = None if methods is None or any("*" in m for m in methods) else frozenset(methods)
    return Operation(fields, exact, found.get("paths"))


def _first_segments(operations: tuple[Operation, ...]) -> frozenset[str] | None:
    """The literal first path segments a rule's ``to`` can match; None when any can.

    Only used to skip rules that cannot match: ``/api/v1/{*}`` and ``/api/*``
    start with ``api``; ``/ap*``, ``*.json`` or ``/{*}/x`` could start with anything.
    """
    if not operations:
        return None
    segments: set[str] = set()
    for operation in operations:
        if operation.path_values is None:
            return None
        for pattern in operation.path_values:
            literal = pattern.split("*", 1)[0].split("{", 1)[0]
            if not literal.startswith("/"):
                return None
            first, slash, _ = literal[1:].partition("/")
            if not slash and literal != pattern:
                return None  # the wildcard is inside the first segment
            segments.add(first)
    return frozenset(segments)


def _path_problem(value: str) -> str | None:
    if "{" in value or "}" in value:
        return path_template_problem(value)
    if not (value.startswith("/") or value.startswith("*")):
        return "a path must start with '/' (or be '*', 'prefix*' or '*suffix')"
    return pattern_problem(value)


def _patterns(reader: Reader, path: Path) -> tuple[str, ...] | None:
    """A non-empty list of Istio patterns (exact, prefix*, *suffix, *)."""
    values = reader.strings(path)
    for index, value in enumerate(values or ()):
        problem = pattern_problem(value)
        if problem:
            reader.error((*path, index), problem)
    return values


def _condition(reader: Reader, path: Path) -> Condition | None:
    source = reader.string(path)
    if source is None:
        return None
    try:
        return compile_condition(source)
    except CelCompileError as exc:
        reader.error(path, f"CEL {exc.line}:{exc.column}: {exc}")
        return None
