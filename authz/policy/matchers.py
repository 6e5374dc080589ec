"""Istio string matching: exact, ``prefix*``, ``*suffix``, ``*``, and path templates.

A list of patterns compiles once into one :class:`StringMatcher`; matching a
value is then a set lookup and two ``startswith``/``endswith`` calls on tuples.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "StringMatcher",
    "compile_path_template",
    "host_pattern",
    "path_template_problem",
    "pattern_problem",
    "strip_port",
]

_SEGMENT = "[^/]+"


@dataclass(frozen=True, slots=True)
class StringMatcher:
    """Matches a value against a list of Istio-style patterns (any one suffices)."""

    exact: frozenset[str]
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    present: bool
    templates: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def build(
        cls,
        patterns: Iterable[str],
        normalise: Callable[[str], str] = str,
        templates: bool = False,
    ) -> StringMatcher:
        """Compile ``patterns``; ``templates`` enables ``{*}``/``{**}`` (paths only)."""
        exact: set[str] = set()
        prefixes: list[str] = []
        suffixes: list[str] = []
        compiled: list[re.Pattern[str]] = []
        present = False
        for raw in patterns:
            if templates and "{" in raw:
                compiled.append(compile_path_template(raw))
                continue
            pattern = normalise(raw) if raw != "*" else raw
            if pattern == "*":
                present = True
            elif pattern.endswith("*"):
                prefixes.append(pattern[:-1])
            elif pattern.startswith("*"):
                suffixes.append(pattern[1:])
            else:
                exact.add(pattern)
        return cls(frozenset(exact), tuple(prefixes), tuple(suffixes), present, tuple(compiled))

    def matches(self, value: str) -> bool:
        """True when ``value`` matches one pattern. ``*`` needs a non-empty value."""
        if value in self.exact:
            return True
        if not value:
            return False
        if self.present:
            return True
        if self.prefixes and value.startswith(self.prefixes):
            return True
        if self.suffixes and value.endswith(self.suffixes):
            return True
        return any(template.match(value) for template in self.templates)

    def matches_any(self, values: tuple[str, ...]) -> bool:
        """True when one of ``values`` matches (roles, audiences)."""
        if not self.exact.isdisjoint(values):
            return True
        if not (self.present or self.prefixes or self.suffixes or self.templates):
            return False
        return any(self.matches(value) for value in values)


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not exact, ``prefix*``, ``*suffix`` or ``*``; None when it is.

    ``a*b`` or ``*x*`` would otherwise be read as a literal and silently never
    match, which inside a ``not…`` field quietly widens access.
    """
    if pattern == "*" or "*" not in pattern:
        return None
    if pattern.count("*") == 1 and (pattern.startswith("*") or pattern.endswith("*")):
        return None
    return "'*' may only be the whole value, its first or its last character"


def path_template_problem(template: str) -> str | None:
    """Why ``template`` is not a valid path template, or None when it is."""
    if not template.startswith("/"):
        return "a path template must start with '/'"
    segments = template.split("/")[1:]
    for index, segment in enumerate(segments):
        if "{" not in segment and "}" not in segment:
            if "*" in segment:
                return "'*' cannot be combined with {*} or {**} templates"
            continue
        if segment == "{**}":
            if index != len(segments) - 1:
                return "{**} may only be the last segment"
        elif segment != "{*}":
            return f"segment {segment!r}: {{*}} and {{**}} must be whole path segments"
    return None


def compile_path_template(template: str, named: str | None = None) -> re.Pattern[str]:
    """Compile a validated template; ``{named}`` captures one segment as a group."""
    parts: list[str] = []
    segments = template.split("/")[1:]
    for segment in segments:
        if segment == "{**}":
            parts.append("(?:/.*)?")
            continue
        if segment == "{*}":
            parts.append("/" + _SEGMENT)
        elif named is not None and segment == "{" + named + "}":
            parts.append(f"/(?P<{named}>{_SEGMENT})")
        else:
            parts.append("/" + re.escape(segment))
    return re.compile("".join(parts) + r"\Z")


def host_pattern(template: str, named: str) -> re.Pattern[str]:
    """Compile a host template where ``{named}`` stands for exactly one DNS label."""
    labels = template.lower().split(".")
    parts = [
        f"(?P<{named}>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)"
        if label == "{" + named + "}"
        else re.escape(label)
        for label in labels
    ]
    return re.compile(r"\.".join(parts) + r"\Z")


def strip_port(host: str) -> str:
    """Lower-case ``host`` without its ``:port`` (IPv6 literals keep their brackets)."""
    host = host.lower()
    if host.count(":") > 1 and not host.startswith("["):
        return host  # a bare IPv6 literal has no port to strip
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    colon = host.rfind(":")
    if colon != -1 and host[colon + 1 :].isdigit():
        return host[:colon]
    return host
