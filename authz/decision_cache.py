"""The decision cache: recent decisions of one snapshot, by everything they can depend on.

Opt-in (``authz serve --decision-cache N``). A hit answers a Check without
building the request attributes and without :func:`~authz.engine.decide`; the
key is read straight from the CheckRequest.

This is a security service, so a key that misses an input is an authorization
bypass. What a snapshot's decisions can read is worked out once per snapshot
(:func:`analyse`): the method, host, raw path (with its query) and source
principal always; the token headers, the tenancy headers and the header names
that CEL conditions read by constant key; the other request parts only when a
condition reads them; the peer certificate when certificates are revoked. A
bundle with a condition that reads the clock or a per-request value (``now``,
``request.time``, ``request.id``), or the header map other than by constant
key, is not cached at all, and the reason is logged once.

An entry belongs to one :class:`~authz.policy.bundle.Snapshot` object (a reload,
rollback, pin or lockdown change builds a new one and empties the cache), holds at
most ``ttl`` seconds, never past the verified token's ``exp`` or the end of a
lockdown, and lapses when the token issuer's remote keys change. Only decisions
that no key refresh can change are kept (:data:`CACHEABLE`; never
``invalid_token``, never one with a CEL error). The cache holds at most ``size``
entries, the oldest evicted first. Single-threaded (asyncio) use only.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from authz.cel import condition_reads
from authz.decision import Decision, Reason
from authz.engine import decide
from authz.identity.keys import KeySet
from authz.identity.tokens import KeySource, Token, extract_token
from authz.policy.bundle import Snapshot
from authz.policy.index import RuleIndex
from authz.request import RequestAttributes, from_check_request
from authz.response import HEADER_PREFIX

__all__ = [
    "CACHEABLE",
    "HANDLING",
    "DecisionCache",
    "Lookup",
    "Reads",
    "analyse",
    "decide_through",
    "rule_reads",
]

_log = logging.getLogger("authz.decision_cache")
_NO_HEADERS: Mapping[str, str] = {}

#: The reasons whose decisions may be kept. Not ``invalid_token``: a key refresh may
#: make an unknown ``kid`` known, and the server waits for it. Not ``internal_error``.
CACHEABLE = frozenset(
    {
        Reason.ALLOWED,
        Reason.BAD_PATH,
        Reason.LOCKDOWN,
        Reason.REVOKED,
        Reason.CROSS_TENANT,
        Reason.DENIED,
        Reason.MISSING_TOKEN,
        Reason.NO_MATCH,
    }
)

# The request parts that join the key only when some condition reads them, read from
# the CheckRequest's `attributes` (the certificate: when serials are revoked).
_PARTS: dict[str, Callable[[Any], Hashable]] = {
    "request.scheme": lambda a: a.request.http.scheme,
    "request.protocol": lambda a: a.request.http.protocol,
    "source.address": lambda a: a.source.address.socket_address.address,
    "source.port": lambda a: a.source.address.socket_address.port_value,
    "destination.address": lambda a: a.destination.address.socket_address.address,
    "destination.port": lambda a: a.destination.address.socket_address.port_value,
    "destination.principal": lambda a: a.destination.principal,
    "context": lambda a: tuple(sorted(a.context_extensions.items())),
    "certificate": lambda a: a.source.certificate,
}

#: How each CEL variable (spec §4.3) enters the key: ``key`` — it follows from the
#: parts always in it (method, host, raw path, source principal, token headers,
#: tenancy headers); ``part`` — its request part joins the key when read;
#: ``headers`` — the names read by constant key join it; ``never`` — a bundle
#: that reads it is not cached. A variable missing here makes a bundle uncacheable.
HANDLING: dict[str, str] = {
    "request.method": "key",
    "request.path": "key",
    "request.raw_path": "key",
    "request.query": "key",
    "request.host": "key",
    "request.scheme": "part",
    "request.protocol": "part",
    "request.id": "never",
    "request.headers": "headers",
    "request.time": "never",
    "request.auth.claims": "key",
    "request.auth.principal": "key",
    "request.auth.audiences": "key",
    "request.auth.roles": "key",
    "request.auth.tenant": "key",
    "source.principal": "key",
    "source.namespace": "key",
    "source.service_account": "key",
    "source.address": "part",
    "source.port": "part",
    "destination.address": "part",
    "destination.port": "part",
    "destination.principal": "part",
    "tenant": "key",
    "context": "part",
    "now": "never",
}


@dataclass(frozen=True, slots=True)
class Reads:
    """What one snapshot's decisions can depend on, besides the method, host, raw path
    and source principal; ``uncacheable`` says why nothing is cached ('' when cached)."""

    headers: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()
    lockdown_ends: tuple[float, ...] = ()  # sorted; an entry never outlives one
    uncacheable: str = ""


def analyse(snapshot: Snapshot, rules: Reads | None = None) -> Reads:
    """What ``snapshot``'s decisions read (see :class:`Reads`); ``rules``: what
    :func:`rule_reads` found in its rules, if already known."""
    found = rule_reads(snapshot.rules) if rules is None else rules
    if found.uncacheable:
        return found
    headers = {source.name for source in snapshot.token_sources}
    headers.update(target.header for target in snapshot.tenancy.targets if target.header)
    headers.update(found.headers)
    parts = {"certificate", *found.parts} if snapshot.revocations.serials else set(found.parts)
    ends = sorted(x.expires.timestamp() for x in snapshot.lockdowns if x.expires is not None)
    return Reads(tuple(sorted(headers)), tuple(sorted(parts)), tuple(ends))


def rule_reads(rules: RuleIndex) -> Reads:
    """The headers and request parts that the CEL conditions of ``rules`` read."""
    headers: set[str] = set()
    parts: set[str] = set()
    for rule in rules.rules:
        if rule.condition is None:
            continue
        reads = condition_reads(rule.condition)
        for variable in sorted(reads.variables.union(rule.condition.variables)):
            handling = HANDLING.get(variable)
            if handling is None or handling == "never":
                return Reads(uncacheable=f"rule {rule.id} reads {variable}")
            if handling == "part":
                parts.add(variable)
            elif handling == "headers":
                if reads.headers is None:
                    why = f"rule {rule.id} reads request.headers other than by a constant name"
                    return Reads(uncacheable=why)
                headers.update(reads.headers)
    return Reads(tuple(sorted(headers)), tuple(sorted(parts)))


class Lookup(NamedTuple):
    """A lookup's outcome: ``key`` None when the request is not cached (bypass);
    ``decision`` the hit, if any; ``ours`` whether a header name starts ``x-authz-``
    (the response then removes the client-sent ones)."""

    key: tuple[Hashable, ...] | None
    decision: Decision | None = None
    ours: bool = False


_BYPASS = Lookup(None)


class _Entry(NamedTuple):
    decision: Decision
    expires: float
    source: KeySource | None  # the token issuer's remote keys: the entry lapses when they change
    keys: KeySet | None


class DecisionCache:
    """At most ``size`` decisions of the current snapshot, each for at most ``ttl`` seconds.

    ``hits``, ``misses``, ``bypasses`` (a request or snapshot that is not cached) and
    ``evictions`` count lookups and entries pushed out by the bound.
    """

    def __init__(self, size: int, ttl: float) -> None:
        if size < 1 or not ttl > 0:
            raise ValueError("size must be at least 1 and ttl more than 0")
        self.size, self.ttl = size, ttl
        self.hits = self.misses = self.bypasses = self.evictions = 0
        self._snapshot: Snapshot | None = None
        self._reads = Reads(uncacheable="no snapshot yet")
        self._headers: tuple[str, ...] = ()
        self._parts: tuple[Callable[[Any], Hashable], ...] = ()
        self._entries: OrderedDict[tuple[Hashable, ...], _Entry] = OrderedDict()
        # The rules' part of the analysis, kept while the rules stay: a lockdown
        # switched on or off builds a new snapshot around the same rules.
        self._rules: tuple[RuleIndex, Reads] | None = None

    @property
    def entries(self) -> int:
        return len(self._entries)

    @property
    def uncacheable(self) -> str:
        """Why the current snapshot's decisions are not cached; '' when they are."""
        return self._reads.uncacheable

    def lookup(self, snapshot: Snapshot, message: Any, now: float) -> Lookup:
        """The fresh decision kept for this CheckRequest under ``snapshot`` at ``now``
        (seconds since the epoch), or the key to :meth:`store` it under."""
        if snapshot is not self._snapshot:
            self._switch(snapshot)
        reads = self._reads
        attributes = message.attributes
        http = attributes.request.http
        headers = http.headers
        names = "".join(headers)
        # Without the http part, with header_map, with names not lower-case (the request
        # attributes lower-case them) or without a method, host or path (they would come
        # from pseudo-headers), the key below would not be what `decide` reads: such
        # requests are decided without the cache.
        if (
            reads.uncacheable
            or not names.islower()
            or not (http.method and http.host and http.path)
        ):
            self.bypasses += 1
            return _BYPASS
        key = (
            http.method,
            http.host,
            http.path,  # with the query: more specific than the normalised path
            attributes.source.principal,
            *map(headers.get, self._headers),  # None: missing, not empty
        )
        if self._parts:
            key += tuple([part(attributes) for part in self._parts])
        ours = HEADER_PREFIX in names
        entry = self._entries.get(key)
        if entry is not None:
            if now < entry.expires and (entry.source is None or entry.source.keys is entry.keys):
                self.hits += 1
                return Lookup(key, entry.decision, ours)
            del self._entries[key]
        self.misses += 1
        return Lookup(key, None, ours)

    def store(
        self, found: Lookup, snapshot: Snapshot, message: Any, decision: Decision, now: float
    ) -> None:
        """Keep ``decision``, just made for the missed lookup ``found``, if it may be kept."""
        if (
            found.key is None
            or snapshot is not self._snapshot
            or decision.cel_errors
            or decision.reason not in CACHEABLE
        ):
            return
        entry = self._entry(snapshot, message, decision, now)
        if entry is None:
            return
        entries = self._entries
        if len(entries) >= self.size:
            entries.popitem(last=False)
            self.evictions += 1
        entries[found.key] = entry

    def _entry(
        self, snapshot: Snapshot, message: Any, decision: Decision, now: float
    ) -> _Entry | None:
        """The entry for ``decision`` with its expiry; None when it may not be kept."""
        expires = now + self.ttl
        source = keys = None
        if decision.reason is not Reason.BAD_PATH:  # bad_path is decided before any token
            headers = message.attributes.request.http.headers
            raw = extract_token(headers, snapshot.token_sources)
            if raw is not None:
                # A token that did not verify, yet no invalid_token: a lockdown came first,
                # or a workload was revoked. Its verification could change: not kept.
                if not decision.issuer:
                    return None
                token = snapshot.tokens.verify(raw, now)  # the token cache's hit
                if not isinstance(token, Token) or token.issuer != decision.issuer:
                    return None
                expires = min(expires, token.expires_at)  # `exp` itself, never the leeway
                source = snapshot.tokens.key_source(token.issuer)
                keys = source.keys if source is not None else None
        for end in self._reads.lockdown_ends:
            if end > now:
                expires = min(expires, end)
                break
        if expires <= now:
            return None
        return _Entry(decision, expires, source, keys)

    def _switch(self, snapshot: Snapshot) -> None:
        """Start over for ``snapshot``: nothing decided under another one is served."""
        self._entries.clear()
        self._snapshot = snapshot
        if self._rules is None or self._rules[0] is not snapshot.rules:
            self._rules = (snapshot.rules, rule_reads(snapshot.rules))
        self._reads = analyse(snapshot, self._rules[1])
        self._headers = self._reads.headers
        self._parts = tuple(_PARTS[part] for part in self._reads.parts)
        if self._reads.uncacheable:
            _log.info(
                "decision cache: policy %s is not cached: %s",
                snapshot.version,
                self._reads.uncacheable,
            )
        else:
            _log.debug(
                "decision cache: policy %s keyed by headers %s and parts %s",
                snapshot.version,
                ", ".join(self._reads.headers) or "none",
                ", ".join(self._reads.parts) or "none",
            )


def decide_through(
    cache: DecisionCache,
    snapshot: Snapshot,
    message: Any,
    now: datetime,
    *,
    attributes_wanted: bool,
) -> tuple[Decision, RequestAttributes | None, Mapping[str, str], bool]:
    """:func:`decide` for the Check ``message``, from ``cache`` when it holds the decision
    (kept there otherwise, if it may be): (the decision, the request attributes when
    built — always on a miss, on a hit only if ``attributes_wanted`` — the headers whose
    client-sent ``x-authz-*`` the response removes, whether it came from the cache).

    A failing cache is bypassed, never trusted: the request is decided as without it.
    Errors of the decision itself are the caller's, as without the cache.
    """
    moment = now.timestamp()
    try:
        found = cache.lookup(snapshot, message, moment)
    except Exception as exc:
        _failed("lookup", exc)
        found = _BYPASS
    if found.decision is not None:
        headers = message.attributes.request.http.headers if found.ours else _NO_HEADERS
        attributes = from_check_request(message) if attributes_wanted else None
        return found.decision, attributes, headers, True
    attributes = from_check_request(message)
    headers = _NO_HEADERS
    if attributes.http is not None and attributes.http.names_ours:
        headers = attributes.http.headers
    decision = decide(snapshot, attributes, now)
    if found.key is not None:
        try:
            cache.store(found, snapshot, message, decision, moment)
        except Exception as exc:
            _failed("store", exc)
    return decision, attributes, headers, False


def _failed(stage: str, exc: Exception) -> None:
    """A cache bug: logged by type only (the message could quote a header)."""
    _log.error("decision cache %s failed (%s); decided without it", stage, type(exc).__name__)
