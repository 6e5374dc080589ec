"""kind: Issuer — a trusted JWT issuer, compiled into an identity Issuer with its keys."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from typing import Any

from authz.errors import PolicyError
from authz.identity.keys import SUPPORTED_ALGORITHMS, JwksError, KeySet
from authz.identity.tokens import HeaderSource, Issuer, RemoteJwks
from authz.policy.reader import Reader
from authz.policy.source import Document, Path

__all__ = ["DEFAULT_ALGORITHMS", "DEFAULT_HEADERS", "compile_issuer"]

DEFAULT_ALGORITHMS = ("RS256", "ES256")
DEFAULT_HEADERS = (HeaderSource("authorization", "Bearer "),)
_KEY_SOURCES = ("jwksUri", "jwksFile", "jwks", "discovery")
_FIELDS = (
    *_KEY_SOURCES,
    "issuer",
    "audiences",
    "caFile",
    "algorithms",
    "rolesClaim",
    "tenantClaim",
    "fromHeaders",
    "leewaySeconds",
)

#: Reads a file named relative to the YAML file: its bytes, or an error message.
ReadFile = Callable[[str], "bytes | str"]


def compile_issuer(
    document: Document, errors: list[PolicyError], name: str, read_file: ReadFile
) -> Issuer | None:
    """Compile one Issuer document (None if it has errors)."""
    before = len(errors)
    reader = Reader(document, errors)
    spec = reader.mapping(("spec",), _FIELDS, ("issuer", "audiences")) or {}

    def optional(field: str, read: Callable[[Path], Any], default: Any) -> Any:
        return read(("spec", field)) if field in spec else default

    issuer = optional("issuer", reader.string, None)
    audiences = optional("audiences", reader.strings, ())
    algorithms = optional("algorithms", reader.strings, DEFAULT_ALGORITHMS) or ()
    for index, algorithm in enumerate(algorithms if "algorithms" in spec else ()):
        if algorithm not in SUPPORTED_ALGORITHMS:
            # `none` and HS* are refused outright: with a shared secret, anyone who
            # can read the JWKS (public by design) could mint tokens.
            reader.error(
                ("spec", "algorithms", index),
                f"algorithm {algorithm!r} is not allowed; use one of "
                + ", ".join(sorted(SUPPORTED_ALGORITHMS)),
            )
    keys = _keys(reader, spec, read_file)
    headers = _headers(reader, spec) if "fromHeaders" in spec else DEFAULT_HEADERS
    ca_pem = _ca_bundle(reader, spec, read_file) if "caFile" in spec else None
    if len(errors) > before or issuer is None:
        return None
    remote = None
    if "jwksUri" in spec or "discovery" in spec:
        if "discovery" in spec and not issuer.startswith("https://"):
            reader.error(("spec", "issuer"), "discovery needs an https:// issuer URL")
            return None
        remote = RemoteJwks(issuer, spec.get("jwksUri"), ca_pem)
    return Issuer(
        name=name,
        issuer=issuer,
        audiences=audiences,
        algorithms=tuple(algorithms),
        keys=keys,
        roles_claim=optional("rolesClaim", reader.string, None),
        tenant_claim=optional("tenantClaim", reader.string, None),
        from_headers=headers,
        leeway_seconds=optional("leewaySeconds", lambda p: reader.integer(p, 0, 600), 30),
        remote=remote,
    )


def _ca_bundle(reader: Reader, spec: dict[str, Any], read_file: ReadFile) -> bytes | None:
    """The PEM CA bundle named by caFile (relative to the YAML file), checked to load."""
    path: Path = ("spec", "caFile")
    if not {"jwksUri", "discovery"} & spec.keys():
        reader.error(path, "caFile only applies to jwksUri or discovery")
        return None
    relative = reader.string(path)
    if relative is None:
        return None
    content = read_file(relative)
    if isinstance(content, str):
        reader.error(path, content)
        return None
    try:
        ssl.create_default_context(cadata=content.decode("ascii"))
    except (ssl.SSLError, ValueError) as exc:
        reader.error(path, f"{relative}: not a PEM CA bundle ({exc})")
        return None
    return content


def _keys(reader: Reader, spec: dict[str, Any], read_file: ReadFile) -> KeySet:
    present = [field for field in _KEY_SOURCES if field in spec]
    if len(present) != 1:
        reader.error(("spec",), "needs exactly one of jwksUri, jwksFile, jwks, discovery: true")
        return KeySet.EMPTY
    (field,) = present
    path: Path = ("spec", field)
    if field == "discovery":
        if reader.boolean(path) is False:
            reader.error(path, "discovery: false names no keys; use jwksUri, jwksFile or jwks")
        return KeySet.EMPTY
    if field == "jwksUri":
        uri = reader.string(path)
        if uri is not None and not uri.startswith("https://"):
            reader.error(path, "jwksUri must be an https:// URL")
        return KeySet.EMPTY
    if field == "jwksFile":
        relative = reader.string(path)
        if relative is None:
            return KeySet.EMPTY
        content = read_file(relative)
        if isinstance(content, str):
            reader.error(path, content)
            return KeySet.EMPTY
        try:
            jwks = json.loads(content)
        except ValueError as exc:
            reader.error(path, f"{relative}: not JSON: {exc}")
            return KeySet.EMPTY
    else:
        jwks = reader.value(path)
    try:
        return KeySet.from_jwks(jwks)
    except JwksError as exc:
        reader.error(path, f"bad JWKS: {exc}")
        return KeySet.EMPTY


def _headers(reader: Reader, spec: dict[str, Any]) -> tuple[HeaderSource, ...]:
    headers = []
    for index in reader.items(("spec", "fromHeaders")):
        path: Path = ("spec", "fromHeaders", index)
        entry = reader.mapping(path, ("name", "prefix"), ("name",))
        if entry is None or "name" not in entry:
            continue
        name = reader.string((*path, "name"))
        prefix = reader.string((*path, "prefix"), empty=True) if "prefix" in entry else ""
        if name is not None and prefix is not None:
            headers.append(HeaderSource(name.lower(), prefix))
    return tuple(headers)
