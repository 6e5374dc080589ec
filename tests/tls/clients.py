"""Clients of the mTLS server: gRPC credentials, a bare TLS handshake, a caller in a loop."""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from authz._proto.envoy.service.auth.v3 import external_auth_pb2_grpc
from tests.engine.checks import check_request
from tests.pki import CertificateAuthority, Issued

# A fresh connection per channel: gRPC would otherwise share one between equal channels.
FRESH = [("grpc.use_local_subchannel_pool", 1)]


def credentials(ca: CertificateAuthority, client: Issued | None) -> grpc.ChannelCredentials:
    """Trust ``ca`` for the server; present ``client``'s certificate, if any."""
    if client is None:
        return grpc.ssl_channel_credentials(ca.cert_pem())
    return grpc.ssl_channel_credentials(ca.cert_pem(), client.key_pem(), client.cert_pem())


def channel(port: int, ca: CertificateAuthority, client: Issued | None) -> grpc.aio.Channel:
    """A new connection to the server at ``port`` as ``client``."""
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials(ca, client), options=FRESH)


async def check(channel: grpc.aio.Channel) -> int:
    """One allowed Check call (the shop's public health path); its gRPC status code."""
    stub = external_auth_pb2_grpc.AuthorizationStub(channel)
    response = await stub.Check(check_request(path="/healthz"), timeout=10)
    code: int = response.status.code
    return code


async def served_serial(port: int, ca: CertificateAuthority, client: Issued) -> int:
    """The serial of the certificate the server presents in a new TLS handshake."""
    return await asyncio.to_thread(_handshake, port, ca, client)


def _handshake(port: int, ca: CertificateAuthority, client: Issued) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca.cert_pem().decode())
    context.set_alpn_protocols(["h2"])  # gRPC refuses TLS clients that do not offer h2
    with tempfile.TemporaryDirectory() as directory:
        context.load_cert_chain(*client.write(Path(directory, "c.pem"), Path(directory, "c.key")))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


class Caller:
    """Calls Check on one channel in a loop until stopped, counting what came back."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.answered = 0
        self.failures: list[Any] = []  # gRPC status of failed calls, CheckResponse code of denials
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                code = await check(self.channel)
            except grpc.aio.AioRpcError as exc:
                self.failures.append(exc.code())
                continue
            if code == 0:
                self.answered += 1
            else:
                self.failures.append(code)

    async def wait_for(self, answered: int, timeout: float = 30) -> None:
        """Until ``answered`` calls in all were answered."""
        async with asyncio.timeout(timeout):
            while self.answered < answered:
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._stop.set()
        await self._task
