"""The admin API: an HTTP/JSON port, apart from Check, to steer a running server.

It shows what is being served (versions, lockdowns, issuers), reloads the bundle,
pins an earlier version (rollback) and switches emergency lockdowns on and off
at run time. Everything it changes goes through the snapshot store; it decides
nothing itself. Callers prove who they are with a bearer token or a client
certificate; every call is logged with the caller and the outcome.

The package is split by concept: ``config`` (where it listens, how callers
authenticate, the token file and TLS context), ``problem`` (answers other than
success), ``forms`` (request bodies into validated values), ``render`` (served
state as JSON) and ``api`` (the aiohttp app, its handlers, authentication and logging).
"""

from __future__ import annotations

from authz.admin.api import AdminServer, start_admin
from authz.admin.config import DEFAULT_ADMIN_LISTEN, AdminConfig
from authz.admin.forms import MAX_BODY_BYTES

__all__ = [
    "DEFAULT_ADMIN_LISTEN",
    "MAX_BODY_BYTES",
    "AdminConfig",
    "AdminServer",
    "start_admin",
]
