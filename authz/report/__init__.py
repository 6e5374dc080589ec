"""`authz report`: a compliance report (Markdown, HTML, PNG charts) from decision logs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from authz.report.charts import draw_charts
from authz.report.document import sections, to_html, to_markdown
from authz.report.summary import Summary, summarise

__all__ = ["Summary", "write_report"]

TITLE = "Authorization decisions: audit report"


def write_report(logs: Sequence[Path], out: Path) -> Summary:
    """Read ``logs``, write ``report.md``, ``report.html`` and the charts into ``out``."""
    summary = summarise(logs)
    out.mkdir(parents=True, exist_ok=True)
    parts = sections(summary, draw_charts(summary, out))
    (out / "report.md").write_text(to_markdown(TITLE, parts), encoding="utf-8")
    (out / "report.html").write_text(to_html(TITLE, parts), encoding="utf-8")
    return summary
