"""Remote keys: JWKS documents fetched over HTTPS, off the request path.

An issuer configured with ``jwksUri`` or ``discovery: true`` gets one
:class:`RemoteKeySource`, shared by every bundle version that names the same
source. Its keys are fetched on the event loop (aiohttp, never a blocking call)
at start and refreshed in the background, when ``Cache-Control: max-age`` says
(within configured bounds). Token verification only ever reads
:attr:`RemoteKeySource.keys`: one attribute, no I/O.

Rotation: a token whose ``kid`` is unknown asks for a refresh. At most one such
refresh per source runs per cool-down period, and every request that meets an
unknown ``kid`` while it runs shares it; the server lets those requests wait
for it for a short, bounded time (``kid_wait``), then decides again.

Outages: a failed refresh keeps the last good keys, is logged, counted and
retried with backoff. A source that was never fetched has no keys, so its
tokens are refused (``401 invalid_token``): fail closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from authz.config import FetchSettings
from authz.identity.keys import EMPTY_KEYS, JwksError, KeySet
from authz.identity.tokens import RemoteJwks

if TYPE_CHECKING:
    from authz.observe import EventSink

__all__ = ["FetchSettings", "KeyFetchError", "KeyFetcher", "RemoteKeySource", "SourceStatus"]

_log = logging.getLogger("authz.keys")
_DISCOVERY_PATH = "/.well-known/openid-configuration"
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)
_FIRST_RETRY_S = 1.0


class KeyFetchError(Exception):
    """A fetch that failed; the message says what went wrong (no secrets in it)."""


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What an operator needs to know about one source (admin API, metrics)."""

    issuer: str
    url: str  # the JWKS URL, or the discovery URL before discovery succeeded
    ready: bool  # keys were fetched at least once
    keys: int
    refreshes: int  # successful fetches
    failures: int  # failed fetches
    last_success: float | None  # seconds since the epoch
    last_error: str | None  # of the last failed fetch, cleared by a success


class RemoteKeySource:
    """The fetched keys of one remote issuer, refreshed until closed.

    ``keys`` is read by token verification on the event loop thread; it is only
    replaced, whole, by that same thread.
    """

    def __init__(self, remote: RemoteJwks, fetcher: KeyFetcher) -> None:
        self.remote = remote
        self.keys: KeySet = EMPTY_KEYS
        self.ready = False
        self.refreshes = 0
        self.failures = 0
        self.last_success: float | None = None
        self.last_error: str | None = None
        self._fetcher = fetcher
        self._settings = fetcher.settings
        self._jwks_uri = remote.jwks_uri  # from discovery when None
        self._inflight: asyncio.Task[tuple[bool, float]] | None = None
        self._on_demand_at = -float("inf")
        self._task: asyncio.Task[None] | None = None
        self.first_attempt = asyncio.Event()

    def status(self) -> SourceStatus:
        return SourceStatus(
            issuer=self.remote.issuer,
            url=self._jwks_uri or _discovery_url(self.remote.issuer),
            ready=self.ready,
            keys=len(self.keys.keys),
            refreshes=self.refreshes,
            failures=self.failures,
            last_success=self.last_success,
            last_error=self.last_error,
        )

    def unknown_kid(self) -> None:
        """A token named a key this source does not have: refresh, at most once per
        cool-down, and tell the fetcher which refresh the request may wait for."""
        if self._task is None:
            return  # not started: no event loop to fetch on (offline use)
        if self._inflight is None or self._inflight.done():
            now = time.monotonic()
            if now - self._on_demand_at < self._settings.cooldown_seconds:
                return
            self._on_demand_at = now
            self._refresh("a token with an unknown kid")
        self._fetcher.pending = self._inflight

    def start(self) -> None:
        """Begin fetching (on the running loop)."""
        if self._task is None:
            name = f"authz-keys {self.remote.issuer}"
            self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    async def close(self) -> None:
        for task in (self._task, self._inflight):
            if task is not None:
                task.cancel()
        for task in (self._task, self._inflight):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        retry = _FIRST_RETRY_S
        while True:
            ok, wait = await asyncio.shield(self._refresh("scheduled"))
            self.first_attempt.set()
            if ok:
                retry = _FIRST_RETRY_S
            else:
                # Back off, with jitter so that replicas do not fetch in step.
                wait = min(retry, self._settings.min_refresh_seconds) * random.uniform(0.8, 1.2)
                retry *= 2
            await asyncio.sleep(wait)

    def _refresh(self, cause: str) -> asyncio.Task[tuple[bool, float]]:
        """The running refresh, or a new one."""
        if self._inflight is None or self._inflight.done():
            loop = asyncio.get_running_loop()
            self._inflight = loop.create_task(self._fetch_and_apply(cause))
        return self._inflight

    async def _fetch_and_apply(self, cause: str) -> tuple[bool, float]:
        """Fetch and install the keys; (success, seconds until the next refresh)."""
        try:
            keys, max_age = await self._fetch()
        except Exception as exc:
            # Whatever failed, the keys held so far stay; only the type of an
            # unexpected error is logged (its message is not ours to trust).
            detail = str(exc) if isinstance(exc, KeyFetchError) else type(exc).__name__
            self.failures += 1
            self.last_error = detail
            held = f"keeping {len(self.keys.keys)} key(s)" if self.ready else "no keys yet"
            _log.warning(
                "keys of %s: fetch failed (%s): %s; %s",
                self.remote.issuer,
                cause,
                detail,
                held,
            )
            if self._fetcher.events is not None:
                self._fetcher.events.emit(
                    "idp_keys_failed",
                    issuer=self.remote.issuer,
                    cause=cause,
                    problem=detail,
                    keys_held=len(self.keys.keys) if self.ready else 0,
                )
            return False, 0.0
        changed = keys != self.keys
        if changed:  # the same keys again keep the same object: cached tokens stay valid
            self.keys = keys
        self.ready = True
        self.refreshes += 1
        self.last_success = time.time()
        self.last_error = None
        if changed:
            kids = ", ".join(sorted({str(key.kid) for key in keys.keys})) or "none"
            _log.info(
                "keys of %s: %d usable key(s) (kids: %s) (%s)",
                self.remote.issuer,
                len(keys.keys),
                kids,
                cause,
            )
        return True, self._next_refresh(max_age)

    def _next_refresh(self, max_age: float | None) -> float:
        s = self._settings
        if max_age is None:
            return s.refresh_seconds
        return min(max(max_age, s.min_refresh_seconds), s.max_refresh_seconds)

    async def _fetch(self) -> tuple[KeySet, float | None]:
        try:
            context = _ssl_context(self.remote.ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise KeyFetchError(f"caFile: unusable CA bundle: {exc}") from None
        if self.remote.jwks_uri is None:
            self._jwks_uri = await self._discover(context)
        assert self._jwks_uri is not None
        document, max_age = await self._fetcher.get_json(self._jwks_uri, context)
        try:
            return KeySet.from_jwks(document), max_age
        except JwksError as exc:
            raise KeyFetchError(f"{self._jwks_uri}: bad JWKS: {exc}") from None

    async def _discover(self, context: ssl.SSLContext) -> str:
        url = _discovery_url(self.remote.issuer)
        document, _ = await self._fetcher.get_json(url, context)
        if not isinstance(document, dict):
            raise KeyFetchError(f"{url}: not a JSON object")
        if document.get("issuer") != self.remote.issuer:
            # OpenID Connect Discovery §4.3: a document for another issuer is not ours.
            raise KeyFetchError(f"{url}: names issuer {document.get('issuer')!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise KeyFetchError(f"{url}: jwks_uri missing or not https")
        return jwks_uri


class KeyFetcher:
    """Every remote key source of the process, and the HTTP client they share.

    :meth:`source` may be called from any thread (bundles load on worker
    threads); fetching happens on the event loop given to :meth:`start`.
    """

    def __init__(
        self, settings: FetchSettings | None = None, events: EventSink | None = None
    ) -> None:
        self.settings = settings or FetchSettings()
        self.events = events  # told of every failed fetch
        #: The refresh the last Check call's unknown kid asked for; the server waits on it.
        self.pending: asyncio.Task[tuple[bool, float]] | None = None
        self._sources: dict[RemoteJwks, RemoteKeySource] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None

    def source(self, remote: RemoteJwks) -> RemoteKeySource:
        """The source for ``remote``, created (and started, once running) if new."""
        with self._lock:
            found = self._sources.get(remote)
            if found is None:
                found = self._sources[remote] = RemoteKeySource(remote, self)
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(found.start)
            return found

    def statuses(self) -> tuple[SourceStatus, ...]:
        with self._lock:
            sources = list(self._sources.values())
        return tuple(source.status() for source in sources)

    async def start(self) -> None:
        """Start fetching, on the running loop, for every source known now or later."""
        loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            # A fetch every few minutes gains nothing from keeping connections open.
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
            headers={"accept": "application/json"},
            # The process's proxy settings do not apply: keys come straight from the IdP.
            trust_env=False,
        )
        with self._lock:
            self._loop = loop
            sources = list(self._sources.values())
        for source in sources:
            source.start()

    async def ready(self, remotes: Iterable[RemoteJwks]) -> None:
        """Return once every source for ``remotes`` has tried its first fetch
        (or the fetch timeout has passed twice over): a bundle then starts with keys."""
        sources = [self.source(remote) for remote in remotes]
        waits = [asyncio.ensure_future(source.first_attempt.wait()) for source in sources]
        if waits:
            _, late = await asyncio.wait(waits, timeout=2 * self.settings.timeout_seconds + 1)
            for wait in late:
                wait.cancel()

    def wait_ready(self, remotes: Iterable[RemoteJwks]) -> None:
        """:meth:`ready` for a worker thread; a no-op on the loop thread or before start."""
        remotes = tuple(remotes)
        loop = self._loop
        if not remotes or loop is None or _on_thread_of(loop):
            return
        future = asyncio.run_coroutine_threadsafe(self.ready(remotes), loop)
        future.result(timeout=2 * self.settings.timeout_seconds + 5)

    async def close(self) -> None:
        with self._lock:
            sources = list(self._sources.values())
            self._loop = None
        for source in sources:
            await source.close()
        if self._session is not None:
            await self._session.close()

    async def get_json(self, url: str, context: ssl.SSLContext) -> tuple[Any, float | None]:
        """GET ``url`` over verified HTTPS: (parsed JSON, Cache-Control max-age or None)."""
        if self._session is None:
            raise KeyFetchError("not started")
        if not url.startswith("https://"):
            raise KeyFetchError(f"{url}: not https")
        limit = self.settings.max_bytes
        try:
            async with self._session.get(url, ssl=context, allow_redirects=False) as response:
                if response.status != 200:
                    raise KeyFetchError(f"{url}: HTTP {response.status}")
                if (response.content_length or 0) > limit:
                    raise KeyFetchError(f"{url}: response larger than {limit} bytes")
                body = bytearray()
                async for chunk in response.content.iter_chunked(16384):
                    body += chunk
                    if len(body) > limit:
                        raise KeyFetchError(f"{url}: response larger than {limit} bytes")
                max_age = _max_age(response.headers.getall("cache-control", []))
        except TimeoutError:
            raise KeyFetchError(f"{url}: timed out") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise KeyFetchError(f"{url}: untrusted certificate: {exc.certificate_error}") from None
        except aiohttp.ClientConnectorError as exc:
            raise KeyFetchError(f"{url}: cannot connect: {exc.os_error}") from None
        except aiohttp.ClientError as exc:
            raise KeyFetchError(f"{url}: {type(exc).__name__}: {exc}") from None
        try:
            return json.loads(body), max_age
        except ValueError:
            raise KeyFetchError(f"{url}: not JSON") from None


def _discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + _DISCOVERY_PATH


def _max_age(values: list[str]) -> float | None:
    """Seconds the response may be cached (0 for no-cache / no-store), or None if unsaid."""
    header = ",".join(values)
    if _NO_CACHE.search(header):
        return 0.0
    found = _MAX_AGE.search(header)
    return float(found.group(1)) if found else None


def _ssl_context(ca_pem: bytes | None) -> ssl.SSLContext:
    """Certificate and host name verification, against the issuer's CA bundle if it has one
    (and then only that), else the system's trust store."""
    if ca_pem is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cadata=ca_pem.decode("ascii"))


def _on_thread_of(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
