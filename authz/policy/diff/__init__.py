"""Bundle diffs: which rules changed between two bundles, and which changes widen access.

Rules are compared by what their YAML *means*, not by its text: entries of
``from``/``to`` and values of a field are sets, principals lose ``spiffe://``,
hosts their port, CEL its insignificant whitespace. A change **widens** access
when the new bundle may allow a request the old one refused:

- an enforced ALLOW is added, or an ALLOW becomes enforced (``dryRun`` off,
  action changed to ALLOW), or is loosened: its policy's tenant or hosts, a
  ``from``/``to`` part with fewer constraints, more values in a positive field,
  fewer in a ``not…`` field, ``when`` removed or changed;
- an enforced DENY is removed, turned into a dry run or another action, or
  narrowed (the mirror image of the above, ``when`` added or changed);
- trust or emergency documents change: an Issuer added or changed, the Tenancy
  changed, a Lockdown removed or changed, a revoked identity removed.

The comparison is syntactic and conservative: a change that cannot be shown
to narrow (``/a/*`` -> ``/a/{*}``, any edit of a ``when``) is reported as
widening, for a person to judge. Nothing is ever silently called safe.
"""

from __future__ import annotations

from authz.policy.diff.bundles import bundle_documents, diff_bundles
from authz.policy.diff.model import BundleDiff, DocumentChange, RuleChange

__all__ = ["BundleDiff", "DocumentChange", "RuleChange", "bundle_documents", "diff_bundles"]
