"""A decision: allowed or not, with the stable reason code, as data (spec §5, §8)."""

from __future__ import annotations

import enum
import os
import random
import time
from typing import Any, NamedTuple

__all__ = ["Decision", "Reason", "new_decision_id"]


class Reason(enum.Enum):
    """Reason codes: one public vocabulary for responses, logs and metric labels."""

    ALLOWED = "allowed"
    BAD_PATH = "bad_path"
    LOCKDOWN = "lockdown"
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - a reason code, not a secret
    REVOKED = "revoked"
    CROSS_TENANT = "cross_tenant"
    DENIED = "denied"
    MISSING_TOKEN = "missing_token"  # noqa: S105 - a reason code, not a secret
    NO_MATCH = "no_match"
    INTERNAL_ERROR = "internal_error"


_STATUS = {
    Reason.ALLOWED: 200,
    Reason.BAD_PATH: 400,
    Reason.INVALID_TOKEN: 401,
    Reason.MISSING_TOKEN: 401,
    Reason.REVOKED: 401,  # a revoked token; a revoked workload sets http_status=403
}


class Decision(NamedTuple):
    """The outcome of one request. ``detail`` is for logs only, never for clients.

    A NamedTuple: immutable, and cheap to build once per request."""

    reason: Reason
    rule: str | None = None
    tenant: str = ""
    subject: str = ""
    would_match: tuple[str, ...] = ()
    audit: tuple[str, ...] = ()
    cel_errors: tuple[str, ...] = ()
    detail: str = ""
    http_status: int = 0  # 0: the reason's usual status; `revoked` is 401 or 403
    issuer: str = ""  # the verified token's `iss`, with ``subject``: who asked (decision log)

    @property
    def allowed(self) -> bool:
        """Only the ``allowed`` reason lets a request through."""
        return self.reason is Reason.ALLOWED

    @property
    def status(self) -> int:
        """The HTTP status the client sees."""
        return self.http_status or _STATUS.get(self.reason, 403)

    def as_json(self, decision_id: str, policy_version: str) -> dict[str, Any]:
        """The decision as data (spec §8): `authz check` output, audit records, tests."""
        return {
            "allowed": self.allowed,
            "status": self.status,
            "reason": self.reason.value,
            "rule": self.rule,
            "tenant": self.tenant,
            "policy_version": policy_version,
            "decision_id": decision_id,
            "would_match": list(self.would_match),
            "audit": list(self.audit),
        }


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [first + second for first in _CROCKFORD for second in _CROCKFORD]  # 10 bits each
_SHIFTS = range(120, -1, -10)


# Decision ids must be unique, not secret (clients see them): a generator seeded
# from the OS once per process saves a getrandom() system call per request.
_random = random.Random(os.urandom(32))


def new_decision_id() -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, 26 Crockford base-32 characters."""
    value = (time.time_ns() // 1_000_000) << 80 | _random.getrandbits(80)
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
