"""A real identity provider's key endpoints: OIDC discovery and JWKS over HTTPS on loopback.

The server runs on its own thread with a certificate from a test CA, so the
code under test meets real TLS, real HTTP and real sockets. A test rotates its
keys, changes its caching headers or its answers, and takes it down and up
again (on the same port) while the server under test keeps running.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.identity.signing import SigningKey
from tests.pki import CertificateAuthority

__all__ = ["IdentityProvider"]


class IdentityProvider:
    """``/.well-known/openid-configuration`` and ``/jwks`` at ``https://127.0.0.1:PORT``."""

    def __init__(self, directory: Path, *keys: SigningKey) -> None:
        self.ca = CertificateAuthority("idp-test-ca")
        self.ca_file = self.ca.write(directory / "idp-ca.pem")
        cert, key = self.ca.issue("idp", ips=["127.0.0.1"], dns=["localhost"]).write(
            directory / "idp.pem", directory / "idp.key"
        )
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(cert, key)
        self.keys: list[SigningKey] = list(keys)
        self.cache_control: str | None = None
        self.status = 200
        self.discovered_issuer: str | None = None  # what discovery claims; None: the real one
        self.padding = 0  # extra bytes in the JWKS document, to exceed size caps
        self.hang = threading.Event()  # set: requests hang until it is cleared
        self.requests: Counter[str] = Counter()
        self.busy = 0  # requests being answered now
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def fetches(self, path: str = "/jwks") -> int:
        with self._lock:
            return self.requests[path]

    def jwks(self) -> dict[str, Any]:
        document: dict[str, Any] = {"keys": [{**key.jwk, "use": "sig"} for key in self.keys]}
        if self.padding:
            document["padding"] = "x" * self.padding
        return document

    def start(self) -> IdentityProvider:
        """Listen (again, on the same port once it has one)."""
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: the port refuses connections until :meth:`start`."""
        self.hang.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> IdentityProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, path: str) -> tuple[int, dict[str, str], bytes] | None:
        with self._lock:
            self.requests[path] += 1
        if path == "/.well-known/openid-configuration":
            issuer = self.discovered_issuer or self.issuer
            body: Any = {"issuer": issuer, "jwks_uri": self.jwks_uri}
        elif path == "/jwks":
            body = self.jwks()
        elif path == "/moved":
            return 302, {"location": self.jwks_uri}, b""
        else:
            return None
        headers = {"content-type": "application/json"}
        if self.cache_control is not None:
            headers["cache-control"] = self.cache_control
        return self.status, headers, json.dumps(body).encode()


def _handler(idp: IdentityProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with idp._lock:
                idp.busy += 1
            try:
                self._get()
            finally:
                with idp._lock:
                    idp.busy -= 1

        def _get(self) -> None:
            while idp.hang.is_set():
                time.sleep(0.05)
            answer = idp._answer(self.path)
            if answer is None:
                self.send_error(404)
                return
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
