"""What a set of decision-log files shows: counts, shares and the evidence they give.

Reads the JSON lines written by :mod:`authz.audit.decisionlog` (rotated files
included, in any order) and tallies them. Lines that are not JSON objects are
counted as unreadable, never skipped silently.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_DENIES", "Summary", "summarise"]

#: Denied because no rule allowed the request: the default, not an explicit rule.
DEFAULT_DENIES = frozenset({"no_match", "missing_token"})


@dataclass
class Summary:
    """The tallies of a set of decision logs."""

    decisions: int = 0
    allowed: int = 0
    unreadable: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    denied_tenants: Counter[str] = field(default_factory=Counter)
    denied_routes: Counter[str] = field(default_factory=Counter)
    cross_tenant: Counter[str] = field(default_factory=Counter)  # "subject → tenant"
    with_workload: int = 0  # a verified mTLS identity (source principal) was present
    with_subject: int = 0  # a verified token subject was present
    explicit: int = 0  # decided by a rule: allowed, or denied by a deny rule
    default_denied: int = 0  # no rule allowed it (no_match, missing_token)
    versions: dict[str, list[str]] = field(default_factory=dict)  # version -> [first, last]
    per_minute: dict[str, Counter[bool]] = field(default_factory=dict)
    allows_without_rule: int = 0
    allows_without_version: int = 0
    allows_anonymous: Counter[str] = field(default_factory=Counter)  # rule -> count
    inconsistent: int = 0  # allowed but not status 200 / reason allowed, or the reverse
    kept_lost: int = 0  # deny records the server reported lost
    allows_shed: int = 0  # allow records the server dropped under overload
    shadow_differences: int = 0
    first: str = ""
    last: str = ""

    @property
    def denied(self) -> int:
        return self.decisions - self.allowed

    @property
    def conforming(self) -> int:
        """Decisions whose record shows policy at work: a version, and an allow only
        with a rule, status 200 and reason ``allowed``."""
        return self.decisions - self.inconsistent - self._allow_gaps

    @property
    def _allow_gaps(self) -> int:
        return self.allows_without_rule + self.allows_without_version

    def add(self, record: dict[str, Any]) -> None:
        """Count one log record."""
        kind = record.get("type")
        if kind == "decision":
            self._decision(record)
        elif kind == "records_lost":
            self.kept_lost += int(record.get("kept", 0))
            self.allows_shed += int(record.get("sheddable", 0))
        elif kind == "shadow_difference":
            self.shadow_differences += 1

    def _decision(self, record: dict[str, Any]) -> None:
        self.decisions += 1
        allowed, reason = bool(record.get("allowed")), str(record.get("reason", ""))
        time, version = str(record.get("time", "")), str(record.get("policy_version") or "")
        self.reasons[reason] += 1
        self.first = min(self.first, time) if self.first else time
        self.last = max(self.last, time)
        seen = self.versions.setdefault(version, [time, time])
        seen[0], seen[1] = min(seen[0], time), max(seen[1], time)
        self.per_minute.setdefault(time[:16], Counter())[allowed] += 1
        self.with_workload += bool(record.get("source_principal"))
        self.with_subject += bool(record.get("subject"))
        if (reason == "allowed") != allowed or (record.get("status") == 200) != allowed:
            self.inconsistent += 1
        if allowed:
            self._allowed(record, version)
        else:
            self._denied(record, reason)

    def _allowed(self, record: dict[str, Any], version: str) -> None:
        self.allowed += 1
        self.explicit += 1
        rule = record.get("rule")
        self.allows_without_rule += not rule
        self.allows_without_version += not version
        if not record.get("subject") and not record.get("source_principal"):
            self.allows_anonymous[str(rule)] += 1

    def _denied(self, record: dict[str, Any], reason: str) -> None:
        tenant = str(record.get("tenant") or "(none)")
        self.denied_tenants[tenant] += 1
        self.denied_routes[f"{record.get('method', '')} {record.get('path', '')}"] += 1
        if reason == "denied":
            self.explicit += 1
        elif reason in DEFAULT_DENIES:
            self.default_denied += 1
        if reason == "cross_tenant":
            self.cross_tenant[f"{record.get('subject') or '(anonymous)'} → {tenant}"] += 1


def summarise(paths: Iterable[Path]) -> Summary:
    """Tally every line of every file."""
    summary = Summary()
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    summary.unreadable += 1
                    continue
                if isinstance(record, dict):
                    summary.add(record)
                else:
                    summary.unreadable += 1
    return summary


def minute(text: str) -> datetime:
    """A ``per_minute`` key as a datetime."""
    return datetime.fromisoformat(text + ":00+00:00")
