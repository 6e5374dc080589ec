"""Scratch bundles for tests: YAML strings written to a directory, with a real signing key.

The key is a real ES256 key made by ``authz.identity.minting`` (fast to generate);
every bundle gets its public JWKS at ``keys/jwks.json`` and may declare the
:data:`ISSUER_YAML` issuer that trusts it. Tokens are minted at :data:`NOW`.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authz.identity.minting import mint, write_key_pair
from authz.policy.bundle import Snapshot, load_bundle

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
ISSUER = "https://idp.test"
AUDIENCE = "shop-api"
KID = "test-1"
ALG = "ES256"

ISSUER_YAML = f"""\
apiVersion: authz/v1
kind: Issuer
metadata: {{name: test-idp}}
spec:
  issuer: {ISSUER}
  audiences: [{AUDIENCE}]
  jwksFile: keys/jwks.json
  algorithms: [{ALG}]
  rolesClaim: roles
  tenantClaim: tenant
"""


@dataclass(frozen=True)
class SigningKey:
    """A private key on disk (PEM) and the public JWKS that trusts it."""

    key_path: Path
    jwks_path: Path
    kid: str = KID
    alg: str = ALG

    @classmethod
    def generate(cls, directory: Path, kid: str = KID) -> SigningKey:
        """A new key pair in ``directory``."""
        key = cls(directory / f"{kid}.pem", directory / f"{kid}.jwks.json", kid)
        write_key_pair(key.key_path, key.jwks_path, kid, ALG)
        return key

    def token(self, *, ttl: int = 300, now: datetime = NOW, **claims: Any) -> str:
        """A signed token; ``iss``/``aud``/``sub`` default to the test issuer's."""
        body: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", **claims}
        body = {name: value for name, value in body.items() if value is not None}
        return mint(self.key_path, self.kid, self.alg, body, ttl, now=now.timestamp())


def write_bundle(root: Path, files: Mapping[str, str], key: SigningKey | None = None) -> Path:
    """Write ``files`` (relative path -> YAML, dedented) under ``root``; copy the JWKS."""
    root.mkdir(parents=True, exist_ok=True)
    if key is not None:
        (root / "keys").mkdir(exist_ok=True)
        shutil.copyfile(key.jwks_path, root / "keys" / "jwks.json")
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def compile_bundle(root: Path, files: Mapping[str, str], key: SigningKey | None = None) -> Snapshot:
    """Write and load a bundle."""
    return load_bundle(write_bundle(root, files, key))


def policy(name: str, rules: str, *, tenant: str | None = None, hosts: str | None = None) -> str:
    """A Policy document; ``rules`` is the YAML list under ``spec.rules`` (dedented)."""
    meta = f"{{name: {name}, tenant: {tenant}}}" if tenant else f"{{name: {name}}}"
    body = textwrap.indent(textwrap.dedent(rules).strip("\n"), "    ")
    host_line = f"  hosts: {hosts}\n" if hosts else ""
    return (
        f"apiVersion: authz/v1\nkind: Policy\nmetadata: {meta}\nspec:\n{host_line}"
        f"  rules:\n{body}\n"
    )
