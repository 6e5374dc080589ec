"""The security-event file rotates by size like the decision log, losing no event."""

from __future__ import annotations

import json
from pathlib import Path

from authz.audit import Audit, AuditConfig


def test_the_security_event_file_rotates_by_size(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    audit = Audit.open(AuditConfig(security_events=str(path), max_bytes=1024, backups=50))
    assert audit.events is not None
    for n in range(60):
        audit.events.emit("cross_tenant_attempt", count=n, tenant="acme")
    audit.close()

    files = [path, *sorted(tmp_path.glob("events.log.*"))]
    assert len(files) > 2  # rotated, more than once
    assert all(f.stat().st_size <= 1024 for f in files)
    counts = sorted(json.loads(line)["count"] for f in files for line in f.read_text().splitlines())
    assert counts == list(range(60))
