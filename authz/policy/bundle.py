"""Loading a bundle: files → documents → compiled rules, issuers, tenancy → a Snapshot.

Loading either yields a complete :class:`Snapshot` or raises
:class:`~authz.errors.BundleError` with every problem found; there is no
partial result, so a broken bundle can never be served.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path as FsPath

from authz.errors import BundleError, PolicyError
from authz.identity.tokens import (
    HeaderSource,
    Issuer,
    KeyProvider,
    TokenVerifier,
    header_sources,
)
from authz.policy.index import RuleIndex
from authz.policy.issuers import compile_issuer
from authz.policy.lockdown import Lockdown, compile_lockdown
from authz.policy.reader import Reader
from authz.policy.revocations import Revocations, compile_revocations
from authz.policy.rules import NAME, NAME_RULE, Rule, compile_policy
from authz.policy.source import Document, parse_documents
from authz.policy.tenancy import Tenancy, compile_tenancy

__all__ = ["API_VERSION", "KINDS", "Snapshot", "load_bundle"]

API_VERSION = "authz/v1"
KINDS = ("Policy", "Issuer", "Tenancy", "Revocations", "Lockdown", "PolicyTest")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable, compiled bundle: everything a decision needs."""

    version: str
    rules: RuleIndex
    tenancy: Tenancy
    issuers: tuple[Issuer, ...]
    token_sources: tuple[HeaderSource, ...]
    tokens: TokenVerifier
    files: tuple[str, ...]
    lockdowns: tuple[Lockdown, ...]
    revocations: Revocations


def load_bundle(
    root: str | os.PathLike[str],
    *,
    token_cache_size: int = 10_000,
    max_token_bytes: int = 16_384,
    key_provider: KeyProvider | None = None,
) -> Snapshot:
    """Load, validate and compile the bundle in directory ``root``.

    Issuers with remote keys (``jwksUri``, ``discovery``) take them from
    ``key_provider``; without one (offline tools), their tokens are refused.
    """
    base = FsPath(root)
    if not base.is_dir():
        raise BundleError([PolicyError(str(root), 1, 1, "", "not a directory")])
    errors: list[PolicyError] = []
    contents: dict[str, bytes] = {}
    documents: list[Document] = []
    for relative in sorted(_bundle_files(base)):
        data = (base / relative).read_bytes()
        contents[relative] = data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(PolicyError(relative, 1, 1, "", f"not UTF-8: {exc.reason}"))
            continue
        found, problems = parse_documents(relative, text)
        documents.extend(found)
        errors.extend(problems)
    if not contents:
        errors.append(PolicyError(str(root), 1, 1, "", "no *.yaml or *.yml files in the bundle"))
    compiled = _Compiler(base, contents, errors)
    for document in documents:
        compiled.add(document)
    if not compiled.rules and not errors:
        errors.append(
            PolicyError(str(root), 1, 1, "", "the bundle has no Policy; it would deny all")
        )
    if errors:
        raise BundleError(errors)
    issuers = tuple(compiled.issuers)
    return Snapshot(
        version=bundle_version(contents),
        rules=RuleIndex.build(compiled.rules),
        tenancy=compiled.tenancy or Tenancy(),
        issuers=issuers,
        token_sources=header_sources(issuers),
        tokens=TokenVerifier(
            issuers,
            cache_size=token_cache_size,
            max_token_bytes=max_token_bytes,
            key_provider=key_provider,
        ),
        files=tuple(sorted(contents)),
        lockdowns=tuple(compiled.lockdowns),
        revocations=compiled.revocations,
    )


def bundle_version(contents: dict[str, bytes]) -> str:
    """``sha256:`` + hex digest of the sorted (relative path, bytes) of the loaded files."""
    digest = hashlib.sha256()
    for relative in sorted(contents):
        data = contents[relative]
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return "sha256:" + digest.hexdigest()


def _bundle_files(base: FsPath) -> Iterator[str]:
    """Relative POSIX paths of the YAML files, skipping hidden files and directories.

    Kubernetes mounts a ConfigMap as ``..data``/``..<timestamp>`` directories
    with top-level symlinks into them: the hidden directories are skipped, the
    symlinks followed, so each file is read once.
    """
    seen: set[str] = set()
    for directory, subdirs, files in os.walk(base, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:  # a symlink loop
            subdirs[:] = []
            continue
        seen.add(real)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and name.endswith((".yaml", ".yml")):
                yield (FsPath(directory) / name).relative_to(base).as_posix()


class _Compiler:
    """Dispatches documents by kind and checks bundle-wide uniqueness."""

    def __init__(self, base: FsPath, contents: dict[str, bytes], errors: list[PolicyError]):
        self.base = base
        self.contents = contents
        self.errors = errors
        self.rules: list[Rule] = []
        self.issuers: list[Issuer] = []
        self.tenancy: Tenancy | None = None
        self.lockdowns: list[Lockdown] = []
        self.revocations = Revocations()
        self.names: dict[tuple[str, str], str] = {}
        self.issuer_urls: dict[str, str] = {}

    def add(self, document: Document) -> None:
        reader = Reader(document, self.errors)
        if document.value is None:
            return  # an empty document (e.g. a trailing `---`)
        top = reader.mapping((), ("apiVersion", "kind", "metadata", "spec"), ("apiVersion", "kind"))
        if top is None or "kind" not in top or "apiVersion" not in top:
            return
        if top["apiVersion"] != API_VERSION:
            reader.error(("apiVersion",), f"unknown apiVersion; expected {API_VERSION!r}")
            return
        kind = top["kind"]
        if kind not in KINDS:
            reader.error(("kind",), f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
            return
        for field in ("metadata", "spec"):
            if field not in top:
                reader.error((), f"missing required field {field!r}")
                return
        name = self._name(reader, kind)
        if kind == "Policy":
            # Compiled even without a valid name, so that all its errors are reported.
            self.rules.extend(compile_policy(document, self.errors, len(self.rules), name))
        elif name is None:
            return
        elif kind == "Issuer":
            self._issuer(document, reader, name)
        elif kind == "Tenancy":
            if self.tenancy is not None:
                reader.error(("kind",), "a bundle holds at most one Tenancy")
            self.tenancy = compile_tenancy(document, self.errors)
        elif kind == "Lockdown":
            lockdown = compile_lockdown(document, self.errors, name)
            if lockdown is not None:
                self.lockdowns.append(lockdown)
        elif kind == "Revocations":
            self.revocations = self.revocations.merge(compile_revocations(document, self.errors))
        elif reader.mapping(("spec",), ("now", "cases"), ("cases",)) is None:
            return  # PolicyTest: run by the test runner, not by the server

    def _name(self, reader: Reader, kind: str) -> str | None:
        """The document's valid name, unique per kind; None (with errors) otherwise."""
        allowed = ("name", "tenant") if kind == "Policy" else ("name",)
        metadata = reader.mapping(("metadata",), allowed, ("name",))
        if metadata is None or "name" not in metadata:
            return None
        name = reader.string(("metadata", "name"))
        if name is None:
            return None
        if not NAME.match(name):
            reader.error(("metadata", "name"), NAME_RULE)
            return None
        if (kind, name) in self.names:
            first = self.names[(kind, name)]
            reader.error(("metadata", "name"), f"duplicate {kind} name {name!r} (also in {first})")
        else:
            self.names[(kind, name)] = reader.document.file
        return name

    def _issuer(self, document: Document, reader: Reader, name: str) -> None:
        directory = FsPath(document.file).parent

        def read_file(relative: str) -> bytes | str:
            target = os.path.normpath(directory / relative).replace(os.sep, "/")
            try:
                data = (self.base / target).read_bytes()
            except OSError as exc:
                return f"cannot read {relative}: {exc.strerror}"
            self.contents[target] = data
            return data

        issuer = compile_issuer(document, self.errors, name, read_file)
        if issuer is None:
            return
        first = self.issuer_urls.setdefault(issuer.issuer, name)
        if first != name:
            reader.error(
                ("spec", "issuer"), f"issuer {issuer.issuer!r} is also declared by {first}"
            )
            return
        self.issuers.append(issuer)
