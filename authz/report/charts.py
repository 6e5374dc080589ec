"""The report's PNG charts (matplotlib, without a display)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from authz.report.summary import Summary, minute

__all__ = ["draw_charts"]


def draw_charts(summary: Summary, out: Path) -> list[tuple[str, str]]:
    """Draw the charts into ``out``; (file name, title) of each, in report order."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    charts = [("decisions-over-time.png", "Decisions over time, by outcome")]
    _over_time(summary, out / charts[0][0], charts[0][1])
    denials = Counter({r: n for r, n in summary.reasons.items() if r != "allowed"})
    for name, title, counts in (
        ("denials-by-reason.png", "Denials by reason", denials),
        ("denials-by-tenant.png", "Denials by tenant", summary.denied_tenants),
    ):
        _bars(counts, out / name, title)
        charts.append((name, title))
    return charts


def _over_time(summary: Summary, path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    keys = sorted(summary.per_minute)
    times = [minute(key).timestamp() / 86_400 for key in keys]  # matplotlib's days since 1970
    figure, axes = plt.subplots(figsize=(8, 3.5))
    for outcome, label, colour in ((True, "allowed", "tab:green"), (False, "denied", "tab:red")):
        counts = [summary.per_minute[key][outcome] for key in keys]
        axes.plot(times, counts, marker="o", label=label, color=colour)
    axes.set_title(title)
    axes.set_ylabel("decisions per minute")
    axes.xaxis_date()
    axes.legend()
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)


def _bars(counts: Counter[str], path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    top = counts.most_common(15)
    figure, axes = plt.subplots(figsize=(8, 3.5))
    axes.barh([name for name, _ in reversed(top)], [n for _, n in reversed(top)], color="tab:red")
    axes.set_title(title)
    axes.set_xlabel("denials")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
