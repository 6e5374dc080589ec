"""The report as Markdown and as HTML, from one list of sections."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from authz.report.summary import Summary

__all__ = ["Section", "sections", "to_html", "to_markdown"]

Table = tuple[tuple[str, ...], list[tuple[object, ...]]]


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: Table | None = None
    image: tuple[str, str] | None = None  # file name, alternative text


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.2%}" if whole else "n/a"


def sections(s: Summary, charts: Sequence[tuple[str, str]]) -> list[Section]:
    """Everything the report says, in order."""
    over_time, by_reason, by_tenant = charts
    return [
        _evidence(s),
        Section(
            "Decisions",
            [
                f"{s.decisions} decisions from {s.first} to {s.last}: {s.allowed} allowed, "
                f"{s.denied} denied."
            ],
            image=over_time,
        ),
        Section(
            "Denials by reason",
            table=(
                ("reason", "denials"),
                [r for r in s.reasons.most_common() if r[0] != "allowed"],
            ),
            image=by_reason,
        ),
        Section(
            "Denials by tenant",
            table=(("tenant", "denials"), list(s.denied_tenants.most_common())),
            image=by_tenant,
        ),
        Section(
            "Identity and rules",
            table=(
                ("measure", "decisions", "share"),
                [
                    (
                        "verified mTLS workload identity (source principal)",
                        s.with_workload,
                        _share(s.with_workload, s.decisions),
                    ),
                    ("verified token subject", s.with_subject, _share(s.with_subject, s.decisions)),
                    (
                        "decided by an explicit rule (allow or deny rule)",
                        s.explicit,
                        _share(s.explicit, s.decisions),
                    ),
                    (
                        "default deny (no_match, missing_token)",
                        s.default_denied,
                        _share(s.default_denied, s.decisions),
                    ),
                ],
            ),
        ),
        Section(
            "Cross-tenant attempts",
            [f"{sum(s.cross_tenant.values())} cross-tenant attempt(s), all denied."],
            table=(("caller → tenant", "attempts"), list(s.cross_tenant.most_common(20))),
        ),
        Section(
            "Top denied routes",
            table=(("route", "denials"), list(s.denied_routes.most_common(10))),
        ),
        Section(
            "Policy versions in force",
            table=(
                ("policy version", "first seen", "last seen"),
                [
                    (v, first, last)
                    for v, (first, last) in sorted(s.versions.items(), key=lambda i: i[1][0])
                ],
            ),
        ),
    ]


def _evidence(s: Summary) -> Section:
    """The compliance summary: what the log shows, and what it cannot."""
    ratio = _share(s.conforming, s.decisions)
    complete = s.kept_lost == 0 and s.allows_shed == 0 and s.unreadable == 0
    claims = [
        f"Policy compliance: {s.conforming} of {s.decisions} decisions ({ratio}) carry a "
        "policy version and, when allowed, the rule that allowed them, with status 200 and "
        "reason `allowed`; every other decision was a denial.",
        f"Allows without a rule: {s.allows_without_rule}. Allows without a policy version: "
        f"{s.allows_without_version}. Records whose outcome, status and reason disagree: "
        f"{s.inconsistent}.",
        f"Allows with neither a verified workload identity nor a verified token subject: "
        f"{sum(s.allows_anonymous.values())}"
        + (f" (by rule: {_rules(s)})." if s.allows_anonymous else "."),
        f"Cross-tenant attempts: {sum(s.cross_tenant.values())}, every one denied. "
        f"Shadow differences recorded: {s.shadow_differences}.",
        f"Completeness: deny records lost {s.kept_lost}, allow records dropped under "
        f"overload {s.allows_shed}, unreadable lines {s.unreadable}"
        + (
            " — the log is complete as far as the server knows."
            if complete
            else " — the log is NOT complete; the figures above cover what was written."
        ),
        "What this cannot prove: that the policies themselves say what they should (review "
        "them and their PolicyTests), that every request went through this service (check "
        "the proxy configuration: fail closed, no bypass route), or that no log file is "
        "missing (rotated files must all be given).",
    ]
    if s.decisions and s.allows_without_rule == s.allows_without_version == s.inconsistent == 0:
        claims.insert(0, "**No allow in these logs lacks a rule or a policy version: no access "
                      "was granted outside the policy in force.**")  # fmt: skip
    return Section("Compliance summary", claims)


def _rules(s: Summary) -> str:
    return ", ".join(f"{rule} {count}" for rule, count in s.allows_anonymous.most_common())


def to_markdown(title: str, parts: Sequence[Section]) -> str:
    lines = [f"# {title}", ""]
    for part in parts:
        lines += [f"## {part.title}", ""]
        for paragraph in part.paragraphs:
            lines += [f"- {paragraph}" if len(part.paragraphs) > 1 else paragraph, ""]
        if part.image:
            lines += [f"![{part.image[1]}]({part.image[0]})", ""]
        if part.table:
            header, rows = part.table
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_html(title: str, parts: Sequence[Section]) -> str:
    e = html.escape
    body = [f"<h1>{e(title)}</h1>"]
    for part in parts:
        body.append(f"<h2>{e(part.title)}</h2>")
        body += [f"<p>{e(p).replace('**', '')}</p>" for p in part.paragraphs]
        if part.image:
            body.append(f'<img src="{e(part.image[0])}" alt="{e(part.image[1])}">')
        if part.table:
            header, rows = part.table
            body.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            for row in rows:
                body.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
            body.append("</table>")
    style = (
        "body{font-family:sans-serif;max-width:60em}td,th{border:1px solid #ccc;padding:2px 6px}"
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
