"""A scratch copy of a policy bundle that trusts a local signing key, and tokens for it.

The committed example bundle trusts a JWKS whose private half does not exist, so
nobody can mint tokens for it. A scratch copy fixes that: copy the bundle, make or
reuse a private key, write the copy's ``jwksFile`` from that key, and sign tokens with
``authz token``. Issuer URL, audience and JWKS path are read from the bundle's
``kind: Issuer`` document, so the example can change without breaking this module.

Tokens are returned, never printed or logged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

__all__ = ["BundleError", "Issuer", "ScratchBundle", "find_issuer", "keygen", "prepare"]

KID = "demo"
ALG = "ES256"


class BundleError(RuntimeError):
    """The bundle has no usable Issuer, or key generation / token signing failed."""


@dataclass(frozen=True, slots=True)
class Issuer:
    """The parts of a bundle's ``kind: Issuer`` needed to mint tokens it accepts."""

    issuer: str
    audience: str
    jwks_file: Path  # absolute, inside the scratch copy


@dataclass(frozen=True, slots=True)
class ScratchBundle:
    """A bundle copy at ``path`` whose Issuer trusts the private key at ``key``."""

    path: Path
    key: Path
    issuer: Issuer

    def token(
        self,
        subject: str,
        *,
        roles: Sequence[str] = (),
        tenant: str | None = None,
        claims: Mapping[str, str] | None = None,
        ttl_s: int = 3600,
        audience: str | None = None,
    ) -> str:
        """Sign a token for ``subject`` with ``authz token`` and return it.

        ``audience`` overrides the Issuer's first audience; a negative ``ttl_s`` gives an
        already expired token.
        """
        argv = [
            *_authz_cli("token"),
            "--key", str(self.key), "--kid", KID, "--alg", ALG,
            "--issuer", self.issuer.issuer, "--audience", audience or self.issuer.audience,
            "--subject", subject, "--ttl", str(ttl_s),
        ]  # fmt: skip
        if roles:
            argv += ["--roles", ",".join(roles)]
        if tenant is not None:
            argv += ["--tenant", tenant]
        for name, value in (claims or {}).items():
            argv += ["--claim", f"{name}={value}"]
        return _run(argv, "authz token").strip()


def _authz_cli(command: str) -> list[str]:
    return [sys.executable, "-m", "authz", command]


def _run(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        # stderr only: stdout may hold a token.
        raise BundleError(f"{what} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _yaml_documents(root: Path) -> Iterable[tuple[Path, object]]:
    for file in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        if any(part.startswith(".") for part in file.relative_to(root).parts):
            continue
        for doc in yaml.safe_load_all(file.read_text()):
            yield file, doc


def find_issuer(root: Path) -> Issuer:
    """Read the first ``kind: Issuer`` with a ``jwksFile`` in the bundle at ``root``."""
    for file, doc in _yaml_documents(root):
        if not isinstance(doc, dict) or doc.get("kind") != "Issuer":
            continue
        spec = doc.get("spec") or {}
        if "jwksFile" in spec:
            return Issuer(
                issuer=str(spec["issuer"]),
                audience=str(spec["audiences"][0]),
                jwks_file=(file.parent / str(spec["jwksFile"])).resolve(),
            )
    raise BundleError(f"no kind: Issuer with a jwksFile under {root}")


def _write_jwks_from_key(key: Path, jwks_file: Path) -> None:
    private = load_pem_private_key(key.read_bytes(), password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise BundleError(f"{key}: expected an EC private key for {ALG}")
    jwk = dict(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True))
    jwk.update({"kid": KID, "alg": ALG, "use": "sig"})
    jwks_file.parent.mkdir(parents=True, exist_ok=True)
    jwks_file.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")


def prepare(source: Path, dest: Path, key: Path) -> ScratchBundle:
    """Copy the bundle ``source`` to ``dest`` (replacing it) and make it trust ``key``.

    A missing ``key`` is generated with ``authz keygen``; an existing one is reused and
    the copy's JWKS is derived from it, so tokens minted earlier stay valid.
    """
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(source, dest, symlinks=True)
    issuer = find_issuer(dest)
    if key.exists():
        _write_jwks_from_key(key, issuer.jwks_file)
    else:
        keygen(key, issuer.jwks_file)
    return ScratchBundle(dest, key, issuer)


def keygen(key: Path, jwks_file: Path) -> None:
    """A new private key at ``key`` and its JWKS at ``jwks_file`` (``authz keygen``)."""
    key.parent.mkdir(parents=True, exist_ok=True)
    argv = [*_authz_cli("keygen"), "--key", str(key), "--jwks", str(jwks_file)]
    _run([*argv, "--kid", KID, "--alg", ALG], "authz keygen")
