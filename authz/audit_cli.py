"""`authz serve`'s audit flags (decision log, security events, webhook) and `authz report`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from authz.audit.config import NEVER_LOGGED, AuditConfig

__all__ = ["add_audit_arguments", "add_report_parser", "audit_config"]


def add_audit_arguments(serve: argparse.ArgumentParser) -> None:
    """The audit flags of `authz serve`, in their own help group."""
    defaults = AuditConfig()
    group = serve.add_argument_group(
        "audit",
        "A decision log (one JSON line per Check) and a security events stream, both off "
        "by default. Lines are written by a background thread: Check only queues them. "
        "See docs/audit.md.",
    )
    group.add_argument(
        "--decision-log",
        default=os.environ.get("AUTHZ_DECISION_LOG"),
        metavar="-|PATH",
        help="write the decision log to stdout (-) or to PATH, rotated by size "
        "(env AUTHZ_DECISION_LOG; default off)",
    )
    group.add_argument(
        "--decision-log-max-bytes",
        type=int,
        default=defaults.max_bytes,
        metavar="N",
        help=f"rotate PATH past this size (default {defaults.max_bytes})",
    )
    group.add_argument(
        "--decision-log-backups",
        type=int,
        default=defaults.backups,
        metavar="N",
        help=f"rotated files kept, PATH.1 … PATH.N (default {defaults.backups})",
    )
    group.add_argument(
        "--decision-log-queue",
        type=int,
        default=defaults.queue_allows,
        metavar="N",
        help="records waiting to be written: N allows (more are dropped and counted) and N "
        f"more places kept for denies (default {defaults.queue_allows})",
    )
    group.add_argument(
        "--log-header",
        action="append",
        default=[],
        metavar="NAME",
        help="copy this request header into each record (repeatable); refused: "
        f"{', '.join(sorted(NEVER_LOGGED))} and any header an Issuer reads tokens from",
    )
    group.add_argument(
        "--security-events",
        default=os.environ.get("AUTHZ_SECURITY_EVENTS"),
        metavar="-|PATH",
        help="write security events (token and revoked bursts, cross-tenant attempts, "
        "lockdowns, rollbacks, failed reloads, identity-provider key failures) as JSON lines "
        "to stdout (-) or PATH, rotated like --decision-log (env AUTHZ_SECURITY_EVENTS; "
        "default off)",
    )
    group.add_argument(
        "--security-webhook",
        default=os.environ.get("AUTHZ_SECURITY_WEBHOOK"),
        metavar="URL",
        help="also POST each security event as JSON to URL: https, or http to loopback "
        "(env AUTHZ_SECURITY_WEBHOOK)",
    )
    group.add_argument(
        "--security-webhook-token-file",
        type=Path,
        metavar="PATH",
        help="send this file's content as a bearer token to the webhook",
    )
    group.add_argument(
        "--security-burst",
        type=int,
        default=defaults.burst_threshold,
        metavar="N",
        help="an invalid_token or revoked burst is N such answers to one source within "
        f"--security-burst-window (default {defaults.burst_threshold})",
    )
    group.add_argument(
        "--security-burst-window",
        type=float,
        default=defaults.burst_window_seconds,
        metavar="S",
        help=f"(default {defaults.burst_window_seconds:g})",
    )


def audit_config(args: argparse.Namespace) -> AuditConfig:
    """The audit settings from the parsed flags (ConfigError if they cannot work)."""
    return AuditConfig(
        decision_log=args.decision_log or None,
        max_bytes=args.decision_log_max_bytes,
        backups=args.decision_log_backups,
        log_headers=tuple(name.lower() for name in args.log_header),
        queue_allows=args.decision_log_queue,
        queue_denies=args.decision_log_queue,
        security_events=args.security_events or None,
        webhook=args.security_webhook or None,
        webhook_token_file=args.security_webhook_token_file,
        burst_threshold=args.security_burst,
        burst_window_seconds=args.security_burst_window,
    )


def add_report_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`authz report LOGFILE... --out DIR`."""
    report = commands.add_parser(
        "report",
        help="a compliance report (Markdown, HTML, PNG charts) from decision logs",
        description="Read decision-log files (give every rotated file) and write report.md, "
        "report.html and PNG charts into DIR: decisions over time, denials by reason and "
        "tenant, identity and rule shares, cross-tenant attempts, top denied routes, policy "
        "versions, and the compliance evidence. Needs matplotlib: pip install 'authz[report]'. "
        "Exit 0 when written, 2 on unreadable input.",
    )
    report.add_argument("logs", nargs="+", type=Path, metavar="LOGFILE", help="decision log")
    report.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    report.set_defaults(run=_report)


def _report(args: argparse.Namespace) -> int:
    try:
        from authz.report import write_report  # matplotlib: only this command needs it
    except ImportError as exc:
        print(f"authz report: {exc}; install it with pip install 'authz[report]'", file=sys.stderr)
        return 2
    try:
        summary = write_report(args.logs, args.out)
    except OSError as exc:
        print(f"authz report: {exc}", file=sys.stderr)
        return 2
    print(
        f"{args.out / 'report.md'}: {summary.decisions} decisions, {summary.denied} denied, "
        f"{summary.conforming} conforming"
    )
    return 0
