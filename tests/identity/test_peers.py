"""parse_principal and istio_form: the calling workload's identity."""

from __future__ import annotations

import pytest

from authz.identity import Peer, istio_form, parse_principal

PEERS: list[tuple[str, str, Peer]] = [
    (
        "spiffe",
        "spiffe://cluster.local/ns/order/sa/api",
        Peer("cluster.local/ns/order/sa/api", "order", "api"),
    ),
    (
        "istio-form",
        "cluster.local/ns/order/sa/api",
        Peer("cluster.local/ns/order/sa/api", "order", "api"),
    ),
    ("empty", "", Peer("", "", "")),
    ("spiffe-only", "spiffe://", Peer("", "", "")),
    ("trust-domain-only", "spiffe://cluster.local", Peer("cluster.local", "", "")),
    ("extra-segment", "td/ns/a/sa/b/c", Peer("td/ns/a/sa/b/c", "", "")),
    ("swapped-keywords", "td/sa/a/ns/b", Peer("td/sa/a/ns/b", "", "")),
    ("empty-namespace", "td/ns//sa/b", Peer("td/ns//sa/b", "", "")),
    ("empty-trust-domain", "/ns/a/sa/b", Peer("/ns/a/sa/b", "", "")),
    (
        "not-spiffe-uri",
        "https://example.com/ns/a/sa/b",
        Peer("https://example.com/ns/a/sa/b", "", ""),
    ),
    ("double-prefix", "spiffe://spiffe://td/ns/a/sa/b", Peer("spiffe://td/ns/a/sa/b", "", "")),
]


@pytest.mark.parametrize(("value", "peer"), [c[1:] for c in PEERS], ids=[c[0] for c in PEERS])
def test_parse_principal(value: str, peer: Peer) -> None:
    assert parse_principal(value) == peer


@pytest.mark.parametrize(
    ("value", "expected"),
    [("spiffe://td/ns/a/sa/b", "td/ns/a/sa/b"), ("td/ns/a/sa/b", "td/ns/a/sa/b"), ("", "")],
    ids=["spiffe", "istio", "empty"],
)
def test_istio_form(value: str, expected: str) -> None:
    assert istio_form(value) == expected
