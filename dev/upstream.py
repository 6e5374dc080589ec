"""The demo upstream: an HTTP/1.1 echo server standing in for the protected API.

Every method gets ``200`` and a JSON body with the method, the path and the request
headers as they arrived (a list of ``[name, value]`` pairs, so a duplicated header
shows up twice; credential headers are shown as ``<redacted>``). That is what lets a
test see which ``x-authz-*`` headers Envoy forwarded after the ext_authz decision.

Run standalone with ``python -m dev.upstream --port 18080`` or in-process with
:func:`start` / :meth:`EchoServer.stop`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from dev.ports import LOOPBACK

__all__ = ["EchoServer", "main", "start"]

log = logging.getLogger("dev.upstream")

_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _shown(name: str, value: str) -> str:
    # Credentials are echoed as present but not repeated: curl output gets pasted.
    return "<redacted>" if name in _SECRET_HEADERS else value


def _render(method: str, path: str, headers: list[tuple[str, str]]) -> str:
    """JSON with one header pair per line: readable from curl, parseable by tests."""
    lowered = [(name.lower(), value) for name, value in headers]
    pairs = ",\n".join(f"    {json.dumps([name, _shown(name, value)])}" for name, value in lowered)
    return (
        f'{{\n  "method": {json.dumps(method)},\n  "path": {json.dumps(path)},\n'
        f'  "headers": [\n{pairs}\n  ]\n}}\n'
    )


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Envoy pools upstream connections

    def version_string(self) -> str:
        return "dev-upstream"

    def _echo(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = _render(self.command, self.path, list(self.headers.items())).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Only the request line and status reach the log, never the headers (tokens).
        log.info("%s %s", self.address_string(), format % args)


for _method in _METHODS:
    setattr(_EchoHandler, f"do_{_method}", _EchoHandler._echo)


@dataclass(slots=True)
class EchoServer:
    """A running echo upstream; :meth:`stop` shuts it down and joins its thread."""

    httpd: ThreadingHTTPServer
    thread: threading.Thread = field(repr=False)

    @property
    def port(self) -> int:
        """The TCP port the server is listening on."""
        port: int = self.httpd.server_address[1]
        return port

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def start(port: int = 0, host: str = LOOPBACK) -> EchoServer:
    """Start the echo upstream on ``host:port`` (0 = any free port) in a daemon thread."""
    httpd = ThreadingHTTPServer((host, port), _EchoHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="dev-upstream", daemon=True)
    thread.start()
    return EchoServer(httpd, thread)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m dev.upstream", description=__doc__)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--host", default=LOOPBACK)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s upstream %(message)s")
    try:
        server = start(args.port, args.host)
    except OSError as exc:
        print(f"upstream: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    stopped = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    log.info("listening on http://%s:%d", args.host, server.port)
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
