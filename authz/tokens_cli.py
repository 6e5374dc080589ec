"""The `authz token` and `authz keygen` commands: local keys and tokens for trying authz."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from authz.identity.minting import KEY_ALGORITHMS, mint, write_key_pair

__all__ = ["add_keygen_parser", "add_token_parser"]


def add_token_parser(commands: Any) -> None:
    """Register `authz token`."""
    token = commands.add_parser(
        "token",
        help="mint a signed JWT with a local key (for trying the service)",
        description="Print a signed JWT. Claims: iss, aud, sub from the flags, roles and tenant "
        "if given, iat/exp/jti added. --claim name=value adds any claim (the value is parsed "
        "as JSON when it can be, e.g. --claim amount_limit=500).",
    )
    token.add_argument("--key", required=True, type=Path, help="private key PEM (authz keygen)")
    token.add_argument("--kid", default="demo", help="key id in the token header (default demo)")
    token.add_argument("--alg", default="ES256", choices=KEY_ALGORITHMS, help="default ES256")
    token.add_argument(
        "--issuer", required=True, help="iss claim, e.g. https://idp.shop.example.com"
    )
    token.add_argument("--audience", required=True, help="aud claim, e.g. shop-api")
    token.add_argument("--subject", required=True, help="sub claim")
    token.add_argument("--roles", default="", help="comma-separated roles claim")
    token.add_argument("--tenant", default="", help="tenant claim")
    token.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until exp (default 3600)")
    token.set_defaults(run=_token)


def add_keygen_parser(commands: Any) -> None:
    """Register `authz keygen`."""
    keygen = commands.add_parser(
        "keygen",
        help="create a local signing key and its public JWKS",
        description="Write a new private key (PEM, mode 0600) and the JWKS holding its public "
        "half, for an Issuer's jwksFile. Keep the private key out of the bundle.",
    )
    keygen.add_argument("--key", required=True, type=Path, help="where to write the private key")
    keygen.add_argument("--jwks", required=True, type=Path, help="where to write the public JWKS")
    keygen.add_argument("--kid", default="demo", help="key id (default demo)")
    keygen.add_argument("--alg", default="ES256", choices=KEY_ALGORITHMS, help="default ES256")
    keygen.set_defaults(run=_keygen)


def _token(args: argparse.Namespace) -> int:
    claims: dict[str, Any] = {"iss": args.issuer, "aud": args.audience, "sub": args.subject}
    if args.roles:
        claims["roles"] = [role for role in args.roles.split(",") if role]
    if args.tenant:
        claims["tenant"] = args.tenant
    for item in args.claim:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"authz token: --claim {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        try:
            claims[name] = json.loads(value)
        except ValueError:
            claims[name] = value
    try:
        print(mint(args.key, args.kid, args.alg, claims, args.ttl))
    except (OSError, ValueError, TypeError) as exc:
        print(f"authz token: {exc}", file=sys.stderr)
        return 2
    return 0


def _keygen(args: argparse.Namespace) -> int:
    write_key_pair(args.key, args.jwks, args.kid, args.alg)
    print(f"wrote {args.key} (private, keep it secret) and {args.jwks} (public JWKS)")
    return 0
