"""The path that rules see (spec §4.2): ``authz.paths.normalise_path``."""

from __future__ import annotations

import pytest

from authz.paths import normalise_path

NORMALISED = [
    pytest.param("/", "/", "", id="root"),
    pytest.param("/api/v1/items", "/api/v1/items", "", id="plain"),
    pytest.param("/api/v1/items/", "/api/v1/items/", "", id="trailing-slash-kept"),
    pytest.param("//api///v1//items", "/api/v1/items", "", id="double-slashes-merged"),
    pytest.param("/a/./b/.", "/a/b/", "", id="dot-segments"),
    pytest.param("/a/b/../c", "/a/c", "", id="dot-dot"),
    pytest.param("/a/b/..", "/a/", "", id="dot-dot-last"),
    pytest.param("/a/b/../../c", "/c", "", id="dot-dot-to-root"),
    pytest.param("/.", "/", "", id="dot-at-root"),
    pytest.param("/a/%2e%2E/b", "/b", "", id="encoded-dot-dot"),
    pytest.param("/a/%2E/b", "/a/b", "", id="encoded-dot"),
    pytest.param("/a/%2e./b", "/b", "", id="half-encoded-dot-dot"),
    pytest.param("/.a/..b/...", "/.a/..b/...", "", id="dots-in-names"),
    pytest.param("/%41%62%63", "/Abc", "", id="unreserved-decoded"),
    pytest.param("/%7e%5F%2d%2E%30", "/~_-.0", "", id="unreserved-marks-decoded"),
    pytest.param("/a%3Fb", "/a%3Fb", "", id="reserved-question-mark-kept"),
    pytest.param("/a%23b", "/a%23b", "", id="reserved-hash-kept"),
    pytest.param("/a%25b", "/a%25b", "", id="percent-kept"),
    pytest.param("/a%3bb", "/a%3Bb", "", id="reserved-kept-upper-case-hex"),
    pytest.param("/a%20b", "/a%20b", "", id="space-kept-encoded"),
    pytest.param("/caf%C3%A9", "/caf%C3%A9", "", id="utf8-kept-encoded"),
    pytest.param("/..;/admin", "/..;/admin", "", id="dot-dot-semicolon-is-a-name"),
    pytest.param("/a?x=1", "/a", "x=1", id="query-removed"),
    pytest.param("/a?", "/a", "", id="empty-query"),
    pytest.param("/a#top", "/a", "", id="fragment-removed"),
    pytest.param("/a?x=1#top", "/a", "x=1", id="query-and-fragment"),
    pytest.param(
        "/a?p=%2F..%5C%00\\\x00/../..", "/a", "p=%2F..%5C%00\\\x00/../..", id="query-anything"
    ),
    pytest.param("/a/b?x=/../../..", "/a/b", "x=/../../..", id="query-dot-dots"),
    pytest.param(
        "/a#frag?x=1",
        "/a",
        "",
        id="question-mark-inside-fragment",
    ),
]


@pytest.mark.parametrize(("raw", "path", "query"), NORMALISED)
def test_normalised(raw: str, path: str, query: str) -> None:
    result = normalise_path(raw)
    assert (result.path, result.query, result.problem) == (path, query, None)


REFUSED = [
    pytest.param("/a%2Fb", "encoded character %2F", id="encoded-slash"),
    pytest.param("/a%2fb", "encoded character %2F", id="encoded-slash-lower-case"),
    pytest.param("/a%5Cb", "encoded character %5C", id="encoded-backslash"),
    pytest.param("/a%5cb", "encoded character %5C", id="encoded-backslash-lower-case"),
    pytest.param("/%2e%2e%2fetc", "encoded character %2F", id="encoded-traversal"),
    pytest.param("/a\\b", "control character or backslash", id="backslash"),
    pytest.param("/a\x00b", "control character or backslash", id="nul"),
    pytest.param("/a%00b", "encoded character %00", id="encoded-nul"),
    pytest.param("/a\tb", "control character or backslash", id="tab"),
    pytest.param("/a\r\nb", "control character or backslash", id="crlf"),
    pytest.param("/a%0d%0aX:1", "encoded character %0D", id="encoded-crlf"),
    pytest.param("/a\x7fb", "control character or backslash", id="del"),
    pytest.param("/a%7F", "encoded character %7F", id="encoded-del"),
    pytest.param("/..", "path escapes the root", id="dot-dot-at-root"),
    pytest.param("/a/../..", "path escapes the root", id="dot-dot-above-root"),
    pytest.param("/a/b/../../../etc", "path escapes the root", id="deep-escape"),
    pytest.param("/%2e%2e", "path escapes the root", id="encoded-dot-dot-at-root"),
    pytest.param("/a/%2E%2e/%2e%2e/x", "path escapes the root", id="encoded-escape"),
    pytest.param("/a%zz", "malformed percent-encoding", id="bad-hex"),
    pytest.param("/a%", "malformed percent-encoding", id="lone-percent"),
    pytest.param("/a%4", "malformed percent-encoding", id="short-escape"),
    pytest.param("a/b", "path must start with '/'", id="relative"),
    pytest.param("", "path must start with '/'", id="empty"),
    pytest.param("*", "path must start with '/'", id="asterisk-form"),
    pytest.param("http://x/a", "path must start with '/'", id="absolute-form"),
    pytest.param("?x=1", "path must start with '/'", id="query-only"),
]


@pytest.mark.parametrize(("raw", "problem"), REFUSED)
def test_refused(raw: str, problem: str) -> None:
    result = normalise_path(raw)
    assert result.path == ""
    assert result.problem is not None and result.problem.startswith(problem)


@pytest.mark.parametrize("code", [*range(0x20), 0x7F], ids=lambda c: f"0x{c:02x}")
def test_every_control_character_refused(code: int) -> None:
    assert normalise_path(f"/a{chr(code)}b").problem is not None
    assert normalise_path(f"/a%{code:02x}b").problem is not None
