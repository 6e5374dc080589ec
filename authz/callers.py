"""Which clients may call Check: the SPIFFE IDs given with ``--allow-client``.

With mTLS every caller holds a certificate from the client CA; in a mesh that is
every workload. The allow-list narrows Check to the proxies that should ask (the
ingress gateway, the sidecars of some namespaces): an ID matches exactly, or by
prefix when it ends in ``/*``. Anyone else gets PERMISSION_DENIED, which Envoy
(``failure_mode_allow: false``) turns into a 403. grpc.health.v1 is not guarded.

The caller's ID is gRPC's ``peer_spiffe_id``: set only when the certificate has
exactly one URI SAN and it is a SPIFFE ID (the X.509-SVID rule). A certificate
with none, or several, has no ID and is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc

__all__ = ["AllowedClients", "Check"]

Check = Callable[[bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]]

_log = logging.getLogger("authz.callers")
_SPIFFE_ID = "peer_spiffe_id"
_MAX_REPORTED = 1024  # refused IDs logged once each; a certificate holder cannot flood the log


class AllowedClients:
    """The allow-list: exact SPIFFE IDs, and prefixes from entries ending in ``/*``.

    Entries are validated by :class:`authz.config.ServerConfig`.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        exact, prefixes = set(), []
        for entry in entries:
            if entry.endswith("/*"):
                prefixes.append(entry[:-1].encode())  # keeps the "/": ns/a/* is not ns/ab
            else:
                exact.add(entry.encode())
        # Bytes, as gRPC's auth context gives them: nothing decoded per call.
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)
        self._reported: set[bytes] = set()

    def permits(self, spiffe_id: bytes) -> bool:
        """True if ``spiffe_id`` is on the list."""
        return spiffe_id in self._exact or spiffe_id.startswith(self._prefixes)

    def guard(self, check: Check) -> Check:
        """``check``, answering PERMISSION_DENIED to callers not on the list."""

        async def guarded(payload: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
            ids = context.auth_context().get(_SPIFFE_ID)
            if ids is None or len(ids) != 1 or not self.permits(ids[0]):
                self._report(ids[0] if ids else b"")
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "client not allowed")
            return await check(payload, context)

        return guarded

    def _report(self, spiffe_id: bytes) -> None:
        if spiffe_id in self._reported or len(self._reported) >= _MAX_REPORTED:
            return
        self._reported.add(spiffe_id)
        _log.warning(
            "refused Check from %s: not on --allow-client (further calls from it are refused "
            "without logging)",
            spiffe_id.decode(errors="replace") or "a certificate without a SPIFFE ID",
        )
