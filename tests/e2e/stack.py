"""The end-to-end stack seen from a client: Envoy in front, echo upstream behind it.

``Stack.request`` sends one HTTP/1.1 request through Envoy with ``http.client``
(the path goes on the wire exactly as given, so ``%2F`` stays encoded), over TLS when
given a client context, and returns what came back, with the echo's view of the
forwarded headers when it answered.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dev.authz_server import AuthzServer
from dev.bundle import ScratchBundle
from dev.envoy import EnvoyProcess

HOST = "api.shop.example.com"


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a process's log file, for a failure message."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


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
        tls: ssl.SSLContext | None = None,
    ) -> Reply:
        """Send ``method path`` to Envoy (over TLS with ``tls``); ``headers`` may repeat a name."""
        sent = [("host", host), *headers]
        if token is not None:
            sent.append(("authorization", f"Bearer {token}"))
        port = self.envoy.cfg.listen_port
        if tls is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        else:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=tls)
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
        return self._stats("ext_authz", "http.ingress_http.ext_authz.")

    def listener_tls_stats(self) -> dict[str, int]:
        """The listener's TLS counters (``handshake``, ``fail_verify_no_cert``…) by name."""
        port = self.envoy.cfg.listen_port
        return self._stats(rf"listener\..*_{port}\.ssl\.", f"listener.127.0.0.1_{port}.ssl.")

    def _stats(self, pattern: str, prefix: str) -> dict[str, int]:
        url = f"{self.envoy.admin_url}/stats?filter={pattern}"
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local admin URL
            text = resp.read().decode()
        stats = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(prefix) and value.isdigit():
                stats[name.removeprefix(prefix)] = int(value)
        return stats

    def access_log_line(self, decision_id: str) -> str:
        """The access log line of one decision (dev.envoy flushes the log every 200 ms)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.2)
            lines = self.access_log.read_text().splitlines()
            line = next((entry for entry in lines if decision_id in entry), "")
            if line:
                return line
        raise AssertionError(f"decision {decision_id} not in {self.access_log}")
