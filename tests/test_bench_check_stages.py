"""Smoke test of ``python -m bench.check_stages``: each cut-short server really runs.

No timing thresholds. What is pinned: every stage answers every call under h2load with
an OK, the cut-short servers are real ``authz serve`` processes (health, the bundle),
and the table names every stage in order.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

from bench.check_stages import STAGES, main, measure, render
from bench.compare.pinning import Pinning


def test_every_stage_serves_load_and_the_table_lists_them(h2load: str, tmp_path: Path) -> None:
    results = measure(list(STAGES), 1, 0.3, Pinning(None, None), tmp_path, warmup_s=0)
    assert [result.stage for result in results] == list(STAGES)
    for result in results:
        (run,) = result.rounds
        assert run.completed > 0
        assert (run.errors, run.payload_ok) == (0, True)
    lines = render(results).splitlines()
    assert [line.split("|")[1].strip() for line in lines[2:]] == list(STAGES)
    # The cut-short servers decided with the real bundle: its log says it loaded it.
    assert "serving on" in (tmp_path / "decide.log").read_text()


def test_a_stage_server_can_be_started_by_hand_and_refuses_nonsense() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["serve-stage", "nonsense", "--"]) == 2
    assert "usage" in out.getvalue()
