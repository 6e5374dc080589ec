"""Errors of the service, as data and as exceptions.

Policy problems are *data* (:class:`PolicyError`), collected while a bundle is
loaded and reported together, sorted. Exceptions exist only where control has
to stop::

    AuthzError
    └── BundleError          the bundle could not be loaded; carries every PolicyError
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AuthzError", "BundleError", "PolicyError"]


@dataclass(frozen=True, slots=True, order=True)
class PolicyError:
    """One problem in a bundle, at ``file:line:column`` and a YAML path."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class AuthzError(Exception):
    """Base of every exception this package raises on purpose."""


class BundleError(AuthzError):
    """A bundle failed to load; ``errors`` holds all of its problems, sorted."""

    def __init__(self, errors: list[PolicyError]) -> None:
        self.errors = tuple(sorted(errors))
        super().__init__(f"{len(self.errors)} bundle error(s)")
