"""The end-to-end stack seen from a client: Envoy in front, echo upstream behind it.

``Stack.request`` sends one plain HTTP/1.1 request through Envoy with ``http.client``
(the path goes on the wire exactly as given, so ``%2F`` stays encoded) and returns
what came back, with the echo's view of the forwarded headers when it answered.
"""

from __future__ import annotations

import http.client
import json
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dev.authz_server import AuthzServer
from dev.bundle import ScratchBundle
from dev.envoy import EnvoyProcess

HOST = "api.shop.example.com"


@dataclass(frozen=True, slots=True)
class Reply:
    """A response as the client saw it."""

    status: int
    headers: dict[str, str]  # lower-case names; Envoy never repeats the ones we read
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def upstream_headers(self, name: str) -> list[str]:
        """Every value of request header ``name`` as the echo upstream received it."""
        return [value for key, value in self.json()["headers"] if key == name.lower()]


@dataclass(slots=True)
class Stack:
    """Handles on the running processes of one e2e session."""

    bundle: ScratchBundle
    authz: AuthzServer
    envoy: EnvoyProcess
    access_log: Path
    tokens: dict[str, str] = field(default_factory=dict, repr=False)

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        token: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        host: str = HOST,
    ) -> Reply:
        """Send ``method path`` to Envoy; ``headers`` may repeat a name."""
        sent = [("host", host), *headers]
        if token is not None:
            sent.append(("authorization", f"Bearer {token}"))
        conn = http.client.HTTPConnection("127.0.0.1", self.envoy.cfg.listen_port, timeout=10)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in sent:
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
        finally:
            conn.close()

    def ext_authz_stats(self) -> dict[str, int]:
        """Envoy's ext_authz filter counters (``ok``, ``denied``, ``error``…) by name."""
        url = f"{self.envoy.admin_url}/stats?filter=ext_authz"
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local admin URL
            text = resp.read().decode()
        stats = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if name.startswith("http.ingress_http.ext_authz."):
                stats[name.rsplit(".", 1)[1]] = int(value)
        return stats
