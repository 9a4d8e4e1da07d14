"""Oversized requests are refused with 413 before they are read: a client that declares a
body over its route's cap gets its answer at once, while it has sent only the headers, and
nobody waits on its bytes. Found: ``POST /api/v1/directory`` read any body whole, and a JSON
body of any size reached the route's parser."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from shared.config import SERVICES
from tests import support

pytestmark = pytest.mark.parametrize("backend", ["embedded"], indirect=True)
GB = 1024**3


def _headers_only(url: str, path: str, length: int, token: str) -> tuple[str, float]:
    """Send only a request's head, declaring ``length`` bytes of body: the status line the
    server answers, and how long it took."""
    where = urlsplit(url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {where.hostname}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {length}\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection((where.hostname, where.port), timeout=5) as conn:
        conn.sendall(head.encode())
        answer = conn.recv(65536).decode("latin-1")
    return answer.split("\r\n", 1)[0], time.monotonic() - started


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/directory",
        "/api/v1/rosters",
        "/api/v1/staff/import",
        "/api/v1/communities/410303001001/needs/upload",
        "/api/v1/members",
    ],
)
def test_a_body_declared_over_its_cap_is_refused_before_it_is_sent(backend: Any, path: str) -> None:
    token = support.issue_token(backend, "admin", "city")
    with support.serving(SERVICES) as url:
        status, took = _headers_only(url, path, GB, token)
    assert status.startswith("HTTP/1.1 413 "), status
    assert took < 5  # answered on the head alone (the socket's timeout is 5 s)


def test_the_refusal_says_what_the_cap_is_and_a_body_within_it_still_lands(backend: Any) -> None:
    token = support.issue_token(backend, "admin", "city")
    auth = {"Authorization": f"Bearer {token}"}
    with support.serving(SERVICES) as url, httpx.Client(base_url=url, headers=auth) as api:
        big = api.post("/api/v1/members", content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
        assert big.status_code == 413
        assert big.headers["content-type"] == "application/problem+json"
        assert "1,048,576 bytes" in big.json()["detail"]

        chunked = api.post(
            "/api/v1/members",
            content=iter([b"{}"]),  # a generator: httpx sends it chunked, with no length
            headers={"Content-Type": "application/json"},
        )
        assert chunked.status_code == 411

        loaded = api.post(
            "/api/v1/directory",
            files={"file": ("directory.csv", support.SAMPLE_DIRECTORY.read_bytes(), "text/csv")},
        )
        assert loaded.status_code == 200, loaded.text
        assert api.post("/api/v1/members", json={}).status_code == 422  # read, and answered
