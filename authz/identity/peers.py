"""Peers: the workload identity of the calling service (mTLS, SPIFFE / Istio).

Envoy reports the peer's URI SAN, e.g. "spiffe://cluster.local/ns/order/sa/api".
Policy compares principals in Istio form (no "spiffe://", spec §4.1) and reads
the namespace and service account parsed from it. Called on every request, so
it is plain string splitting, no regular expressions.
"""

from __future__ import annotations

import functools
from typing import NamedTuple
from urllib.parse import unquote

from cryptography import x509

__all__ = ["Peer", "certificate_serial", "istio_form", "parse_principal"]

_SPIFFE = "spiffe://"


class Peer(NamedTuple):
    """A caller's principal in Istio form and the namespace/service account in it.

    A NamedTuple rather than a frozen dataclass: equally immutable, built per
    request, and about five times cheaper to construct."""

    principal: str  # "<trust-domain>/ns/<ns>/sa/<sa>"; "" when unknown
    namespace: str
    service_account: str


def istio_form(value: str) -> str:
    """`value` without a leading "spiffe://"."""
    return value.removeprefix(_SPIFFE)


@functools.lru_cache(maxsize=4096)
def parse_principal(value: str) -> Peer:
    """A Peer from a SPIFFE ID or Istio principal. Other shapes keep the principal
    but have no namespace or service account, so namespace rules never match them.

    Cached: a mesh has few workloads, and they call again and again."""
    principal = istio_form(value)
    parts = principal.split("/")
    if len(parts) == 5 and parts[1] == "ns" and parts[3] == "sa" and all(parts):
        return Peer(principal=principal, namespace=parts[2], service_account=parts[4])
    return Peer(principal=principal, namespace="", service_account="")


@functools.lru_cache(maxsize=1024)
def certificate_serial(encoded_pem: str) -> str | None:
    """The serial number (lower-case hex) of Envoy's URL-encoded PEM peer certificate.

    None when it cannot be read. Cached: the same few workload certificates
    come back on every request until they rotate.
    """
    try:
        certificate = x509.load_pem_x509_certificate(unquote(encoded_pem).encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return format(certificate.serial_number, "x")
