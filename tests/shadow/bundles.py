"""An active bundle and a candidate that differs from it both ways, with a real key.

Acme's staff may read Acme's items (active). The candidate narrows reading to
managers and widens access with writes by staff: a staff GET is allowed by the
active bundle and denied by the candidate (narrowed), a staff PUT the reverse
(widened). Everything else — health probes, other tenants — decides the same.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from authz.policy.bundle import Snapshot, load_bundle
from tests.policy.bundles import ISSUER_YAML, SigningKey, policy, write_bundle

ITEMS = "/api/v1/vendors/acme/items"
TENANCY = """\
apiVersion: authz/v1
kind: Tenancy
metadata: {name: vendors}
spec:
  target:
    - pathTemplate: "/api/v1/vendors/{tenant}/{**}"
"""
PROBES = policy(
    "health",
    """
    - name: probes
      to: [{methods: [GET], paths: ["/healthz"]}]
    """,
)
ACME = policy(
    "acme-vendor",
    f"""
    - name: staff-read
      from: [{{roles: ["vendor:staff", "vendor:manager"]}}]
      to: [{{methods: [GET], paths: ["{ITEMS}", "{ITEMS}/{{*}}"]}}]
      when: request.auth.tenant == tenant
    """,
    tenant="acme",
)
CANDIDATE = policy(
    "acme-vendor",
    f"""
    - name: staff-read
      from: [{{roles: ["vendor:manager"]}}]
      to: [{{methods: [GET], paths: ["{ITEMS}", "{ITEMS}/{{*}}"]}}]
      when: request.auth.tenant == tenant
    - name: staff-write
      from: [{{roles: ["vendor:staff"]}}]
      to: [{{methods: [PUT], paths: ["{ITEMS}/{{*}}"]}}]
      when: request.auth.tenant == tenant
    """,
    tenant="acme",
)
# `allow` is not an action (ALLOW is): line 7, column 15 of acme.yaml.
BROKEN = ACME.replace("    - name: staff-read\n", "    - name: staff-read\n      action: allow\n")
BROKEN_ERROR = "acme.yaml:7:15: spec.rules[0].action: must be ALLOW, DENY or AUDIT"


def active(root: Path, key: SigningKey) -> Path:
    """The active bundle at ``root``."""
    return _write(root, key, ACME)


def candidate(root: Path, key: SigningKey) -> Path:
    """The candidate bundle at ``root``."""
    return _write(root, key, CANDIDATE)


def broken(root: Path, key: SigningKey) -> Path:
    """An invalid bundle at ``root``."""
    return _write(root, key, BROKEN)


def replace_policy(root: Path, text: str) -> None:
    """Rewrite the tenant policy of the bundle at ``root`` atomically."""
    scratch = root / ".acme.yaml.new"
    scratch.write_text(text)
    scratch.replace(root / "acme.yaml")


def copy(source: Path, root: Path) -> Path:
    """A copy of the bundle at ``source``: the same version."""
    shutil.copytree(source, root)
    return root


def version(root: Path) -> str:
    """The version of the bundle at ``root``."""
    return load_bundle(root).version


EXPLOSION = "this message quotes the request"


class _ExplodingIndex:
    """A rule index whose lookup fails, quoting the request as a careless error might."""

    def __init__(self, token: str) -> None:
        self.token = token

    def candidates(self, *args: Any) -> Any:
        raise RuntimeError(f"{EXPLOSION}: {self.token}")


def exploding(snapshot: Snapshot, token: str) -> Snapshot:
    """``snapshot`` as a new version whose every rule lookup raises (the fake at the seam)."""
    rules: Any = _ExplodingIndex(token)
    return dataclasses.replace(snapshot, version="sha256:exploding", rules=rules)


def _write(root: Path, key: SigningKey, acme: str) -> Path:
    files = {"issuer.yaml": ISSUER_YAML, "tenancy.yaml": TENANCY, "health.yaml": PROBES}
    return write_bundle(root, {**files, "acme.yaml": acme}, key)
