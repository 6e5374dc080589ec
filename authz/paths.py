"""The path that rules see: normalisation and refusal of ambiguous paths.

Proxies, frameworks and upstreams disagree on what ``/a/%2F..`` or ``/a\\b``
mean; an authorization decision taken on one reading and served on another is
a bypass. So ambiguous paths are refused (``400 bad_path``) and every other
path is brought to one canonical form before any rule sees it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["NormalisedPath", "normalise_path"]

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT = re.compile(r"%(?P<hex>[0-9A-Fa-f]{2})|%")
# Encoded '/' or '\' would change the segment structure after decoding; encoded
# control characters smuggle NUL and CR/LF into upstream parsers.
_FORBIDDEN_ENCODED = frozenset({0x2F, 0x5C, 0x7F, *range(0x20)})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


class NormalisedPath(NamedTuple):
    """The normalised path, the query string, or the reason the path is refused."""

    path: str
    query: str
    problem: str | None = None


def normalise_path(raw: str) -> NormalisedPath:
    """Normalise the path component of ``raw`` (which may carry ``?query#fragment``)."""
    without_fragment = raw.partition("#")[0]
    path, _, query = without_fragment.partition("?")
    if not path.startswith("/"):
        return NormalisedPath("", query, "path must start with '/'")
    if _CONTROL.search(path):
        return NormalisedPath("", query, "control character or backslash in path")
    problem: list[str] = []

    def decode(match: re.Match[str]) -> str:
        digits = match.group("hex")
        if digits is None:
            problem.append("malformed percent-encoding")
            return "%"
        char = int(digits, 16)
        if char in _FORBIDDEN_ENCODED:
            problem.append(f"encoded character %{digits.upper()} in path")
        return chr(char) if chr(char) in _UNRESERVED else f"%{digits.upper()}"

    if "%" in path:
        path = _PERCENT.sub(decode, path)
        if problem:
            return NormalisedPath("", query, problem[0])
    resolved = _resolve(path)
    if resolved is None:
        return NormalisedPath("", query, "path escapes the root with '..'")
    return NormalisedPath(resolved, query)


def _resolve(path: str) -> str | None:
    """Merge slashes and resolve dot segments (RFC 3986 §5.2.4); None if above root."""
    if "//" not in path and "/." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if not output:
                return None
            output.pop()
            if last:
                output.append("")
        elif segment == ".":
            if last:
                output.append("")
        elif segment or last:
            output.append(segment)
    return "/" + "/".join(output)
