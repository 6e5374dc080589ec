"""kind: Revocations — identities that must no longer pass (spec §3a).

Every Revocations document of a bundle is merged into one set per kind of
identity. A revoked token (``jti`` or ``<iss>/<sub>``) is ``401 revoked``;
a revoked workload principal or certificate serial is ``403 revoked``.
"""

from __future__ import annotations

from dataclasses import dataclass

from authz.errors import PolicyError
from authz.identity.peers import istio_form
from authz.policy.reader import Reader
from authz.policy.source import Document

__all__ = ["Revocations", "compile_revocations", "normalise_serial"]

_FIELDS = ("tokenIds", "subjects", "principals", "certificateSerials")


def normalise_serial(serial: str) -> str:
    """``3F:A2:00:1b`` and ``3fa2001b`` name the same serial: lower-case hex, no colons."""
    return serial.replace(":", "").lower().lstrip("0") or "0"


@dataclass(frozen=True, slots=True)
class Revocations:
    """The revoked identities of a bundle."""

    token_ids: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()
    principals: frozenset[str] = frozenset()
    serials: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        """Nothing is revoked (the usual case: the check is skipped)."""
        return not (self.token_ids or self.subjects or self.principals or self.serials)

    def merge(self, other: Revocations) -> Revocations:
        """Both documents' revocations."""
        return Revocations(
            self.token_ids | other.token_ids,
            self.subjects | other.subjects,
            self.principals | other.principals,
            self.serials | other.serials,
        )


def compile_revocations(document: Document, errors: list[PolicyError]) -> Revocations:
    """Compile one Revocations document."""
    reader = Reader(document, errors)
    spec = reader.mapping(("spec",), _FIELDS) or {}
    if not spec and isinstance(reader.value(("spec",)), dict):
        reader.error(("spec",), f"names nothing to revoke; use one of {', '.join(_FIELDS)}")
    found: dict[str, tuple[str, ...]] = {}
    for field in _FIELDS:
        if field in spec:
            found[field] = reader.strings(("spec", field)) or ()
    for index, serial in enumerate(found.get("certificateSerials", ())):
        if not all(char in "0123456789abcdefABCDEF:" for char in serial):
            reader.error(("spec", "certificateSerials", index), "must be hexadecimal, e.g. 3f:a2:…")
    return Revocations(
        token_ids=frozenset(found.get("tokenIds", ())),
        subjects=frozenset(found.get("subjects", ())),
        principals=frozenset(istio_form(p) for p in found.get("principals", ())),
        serials=frozenset(normalise_serial(s) for s in found.get("certificateSerials", ())),
    )
