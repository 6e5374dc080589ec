"""Reading typed fields out of a YAML document, collecting errors as it goes.

Unknown fields are errors everywhere: a typo such as ``principal:`` for
``principals:`` must not silently widen (or narrow) access.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from authz.errors import PolicyError
from authz.policy.source import Document, Path

__all__ = ["Reader"]


class Reader:
    """Typed access to one document; each failed read records a PolicyError."""

    def __init__(self, document: Document, errors: list[PolicyError]) -> None:
        self.document = document
        self.errors = errors

    def error(self, path: Path, message: str) -> None:
        """Record a problem at ``path``."""
        self.errors.append(self.document.error(path, message))

    def value(self, path: Path) -> Any:
        """The raw value at ``path`` (which must exist)."""
        value: Any = self.document.value
        for part in path:
            value = value[part]
        return value

    def mapping(
        self,
        path: Path,
        allowed: Collection[str],
        required: Collection[str] = (),
    ) -> dict[str, Any] | None:
        """The mapping at ``path``, after checking its keys."""
        value = self.value(path)
        if not isinstance(value, Mapping):
            self.error(path, f"must be a mapping, got {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                self.error((*path, key), f"unknown field {key!r}; expected one of {_list(allowed)}")
        for key in required:
            if key not in value:
                self.error(path, f"missing required field {key!r}")
        return dict(value)

    def string(self, path: Path, *, empty: bool = False) -> str | None:
        """A string (non-empty unless ``empty``)."""
        value = self.value(path)
        if not isinstance(value, str):
            self.error(path, f"must be a string, got {_kind(value)}")
            return None
        if not empty and not value:
            self.error(path, "must not be empty")
            return None
        return value

    def strings(self, path: Path) -> tuple[str, ...] | None:
        """A non-empty list of non-empty strings."""
        value = self.value(path)
        if not isinstance(value, list):
            self.error(path, f"must be a list of strings, got {_kind(value)}")
            return None
        if not value:
            self.error(path, "must not be an empty list")
            return None
        items = [self.string((*path, index)) for index in range(len(value))]
        if any(item is None for item in items):
            return None
        return tuple(item for item in items if item is not None)

    def boolean(self, path: Path) -> bool | None:
        """A YAML boolean."""
        value = self.value(path)
        if not isinstance(value, bool):
            self.error(path, f"must be true or false, got {_kind(value)}")
            return None
        return value

    def integer(self, path: Path, low: int, high: int) -> int | None:
        """An integer within ``[low, high]``."""
        value = self.value(path)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"must be an integer, got {_kind(value)}")
            return None
        if not low <= value <= high:
            self.error(path, f"must be between {low} and {high}")
            return None
        return value

    def items(self, path: Path) -> range:
        """Indexes of the non-empty list at ``path`` (empty range after an error)."""
        value = self.value(path)
        if not isinstance(value, list):
            self.error(path, f"must be a list, got {_kind(value)}")
            return range(0)
        if not value:
            self.error(path, "must not be an empty list")
        return range(len(value))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _list(names: Collection[str]) -> str:
    return ", ".join(sorted(names))
