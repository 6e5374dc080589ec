"""Admin API request forms: JSON bodies read, checked and turned into values (lockdowns).

Every rejection is a 4xx ``Problem`` naming what was wrong with the request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from authz.admin.problem import Problem
from authz.errors import PolicyError
from authz.policy.lockdown import Lockdown, compile_lockdown
from authz.policy.rules import NAME, NAME_RULE
from authz.policy.source import Document

__all__ = ["MAX_BODY_BYTES", "fields", "json_body", "lockdown_from"]

MAX_BODY_BYTES = 64 * 1024


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} when empty); 415 unless sent as JSON.

    Insisting on application/json keeps browsers out: a cross-site form cannot
    send it without a CORS preflight, which this API never answers.
    """
    if request.content_type != "application/json":
        raise Problem(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()  # at most MAX_BODY_BYTES, else 413
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise Problem(400, "bad_json", f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Problem(400, "bad_json", "the body must be a JSON object")
    return value


def fields(
    body: dict[str, Any], allowed: Sequence[str], required: Sequence[str] = ()
) -> dict[str, Any]:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise Problem(400, "bad_request", f"unknown field(s): {', '.join(unknown)}")
    missing = [name for name in required if name not in body]
    if missing:
        raise Problem(400, "bad_request", f"missing required field(s): {', '.join(missing)}")
    return body


def lockdown_from(body: dict[str, Any], now: datetime) -> Lockdown:
    """A Lockdown from the request, validated exactly as the bundle's ``kind: Lockdown``."""
    spec = dict(body)
    name = spec.pop("name", None)
    problems = [] if isinstance(name, str) and NAME.match(name) else [f"name: {NAME_RULE}"]
    errors: list[PolicyError] = []
    lockdown = compile_lockdown(Document("request", {"spec": spec}), errors, str(name))
    for error in errors:
        where = error.path.removeprefix("spec").lstrip(".")
        problems.append(f"{where}: {error.message}" if where else error.message)
    if lockdown is not None and lockdown.expires is not None and lockdown.expires <= now:
        problems.append("expires: is in the past")
    if problems or lockdown is None:
        raise Problem(400, "invalid_lockdown", "; ".join(problems), problems=problems)
    return lockdown
