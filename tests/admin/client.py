"""Calling the admin API in tests: one aiohttp session, answers as (status, headers, JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

TOKEN = "s3cret-admin-token-0123456789abcdef"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of the admin API."""

    status: int
    headers: CIMultiDictProxy[str]
    body: dict[str, Any]


class Client:
    """Calls one admin API, with the test token unless told otherwise."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One call; ``body`` is sent as JSON, ``data`` as raw bytes."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = None
        async with self.session.request(
            method, self.url + path, json=body, data=data, headers=sent
        ) as response:
            payload = await response.json(content_type=None)
            return Answer(response.status, response.headers, payload)

    async def ok(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A call that must succeed; its JSON body."""
        answer = await self.call(method, path, body)
        assert answer.status == 200, answer.body
        return answer.body
