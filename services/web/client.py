"""The services' public HTTP API, as the web app calls it: with the signed-in person's
token, nothing else. A refusal becomes :class:`ApiError` carrying the RFC 9457 problem."""

from __future__ import annotations

from typing import Any

import httpx

TIMEOUT = httpx.Timeout(20.0, connect=3.0)


class ApiError(Exception):
    """The API refused (4xx), failed (5xx) or could not be reached (status 502)."""

    def __init__(self, status: int, problem: dict[str, Any], headers: httpx.Headers | None = None):
        super().__init__(f"{status}: {problem.get('detail') or problem.get('title')}")
        self.status = status
        self.problem = problem
        self.headers = headers or httpx.Headers()

    @property
    def detail(self) -> str:
        return str(self.problem.get("detail") or self.problem.get("title") or "")

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors = self.problem.get("errors")
        return errors if isinstance(errors, list) else []


class Api:
    """One page's conversation with the API; ``calls`` counts its requests.

    ``client`` is the person's address as the web app saw it: the API counts sign-in
    limits per address, and without it every visitor would share the web server's one.
    It travels as ``X-Forwarded-For``, which the API's server believes only from a proxy
    it trusts (uvicorn: 127.0.0.1 unless ``FORWARDED_ALLOW_IPS`` says more).
    """

    def __init__(self, http: httpx.AsyncClient, token: str | None, client: str = "") -> None:
        self._http = http
        self._token = token
        self._client = client
        self.calls = 0

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if self._client:
            headers["X-Forwarded-For"] = self._client
        self.calls += 1
        try:
            response = await self._http.request(method, "/api/v1" + path, headers=headers, **kwargs)
        except httpx.InvalidURL:
            # a path built from what someone typed into the address bar
            raise ApiError(404, {"title": "Not found", "detail": "no such path"}) from None
        except httpx.HTTPError as exc:
            raise ApiError(502, {"title": "unreachable", "detail": type(exc).__name__}) from None
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            if not isinstance(problem, dict):
                problem = {}
            raise ApiError(response.status_code, problem, response.headers)
        return response

    async def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return (await self.send("GET", path, params=clean)).json()

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        response = await self.send("POST", path, json=json, **kwargs)
        return response.json() if response.content else None

    async def put(self, path: str, json: Any) -> Any:
        return (await self.send("PUT", path, json=json)).json()

    async def patch(self, path: str, json: Any) -> Any:
        return (await self.send("PATCH", path, json=json)).json()

    async def delete(self, path: str) -> Any:
        response = await self.send("DELETE", path)
        return response.json() if response.content else None
