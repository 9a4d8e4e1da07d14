"""Where the report e-mail's files come from: reporting's API, over HTTP.

Reporting keeps each report's files in its own database and serves them at
``GET /api/v1/reports/{id}/files/{name}``; notify asks there with the report-files token
(``SERVICEMONTH_REPORT_FILES_TOKEN``, which reads report files and nothing else), at
``SERVICEMONTH_REPORTING_URL``. No folder is shared between the two. When reporting cannot
be reached, or does not have the file (yet), the fetch raises :class:`ReportMissing`: the
message waits and is tried again (:mod:`.sending`), and fails only once its attempts are
spent — an e-mail never goes without its report.

:class:`HttpReportFiles` is built by :mod:`.bootstrap`; tests pass their own
:class:`ReportFiles`.
"""

from __future__ import annotations

import re
from typing import Protocol

import httpx

__all__ = ["HttpReportFiles", "ReportFiles", "ReportMissing", "file_path"]

_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ReportMissing(Exception):
    """A file of the report cannot be had (yet): reporting unreachable, or not there."""


class ReportFiles(Protocol):
    """Gives one file of a report by its path ``<report-id>/<name>``."""

    def fetch(self, path: str) -> bytes:
        """The file's bytes; :class:`ReportMissing` when it cannot be had now."""
        ...


def file_path(relative: str) -> tuple[str, str] | None:
    """``(report id, name)`` of a path as ``report.generated`` lists it, or None for
    anything else (``..``, more folders, an absolute path)."""
    report, _, name = relative.partition("/")
    if not _PART.fullmatch(report) or not _PART.fullmatch(name) or ".." in relative:
        return None
    return report, name


class HttpReportFiles:
    """Report files from reporting's download route (one client per process, made on first
    use: after a worker forks)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout,
                transport=self._transport,
                follow_redirects=False,  # the token goes to reporting only
            )
        return self._client

    def fetch(self, path: str) -> bytes:
        parts = file_path(path)
        if parts is None:
            raise ReportMissing(f"report file {path!r} is not a report's file")
        report, name = parts
        try:
            answer = self._http().get(f"/api/v1/reports/{report}/files/{name}")
        except httpx.HTTPError as exc:
            raise ReportMissing(
                f"report file {path}: reporting at {self.base_url} did not answer "
                f"({type(exc).__name__})"
            ) from None
        if answer.status_code != 200:
            raise ReportMissing(
                f"report file {path}: reporting at {self.base_url} answered {answer.status_code}"
            )
        return answer.content

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
