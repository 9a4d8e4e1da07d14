"""The e-mail a message becomes, and the report e-mail's body: the report itself.

``report_ready`` (from ``report.generated``) lists the report's files as
``<report-id>/<name>``; notify fetches them from reporting's API
(:mod:`.report_files`), never from a folder. The HTML body is ``report.html`` with its
``<img src="ranking.png">`` and ``progress.png`` pointing at the attached inline images
(``cid:``); the spreadsheet is attached. A file that cannot be had (reporting unreachable,
the file not there) is :class:`ReportMissing`: the send waits and tries again, and fails
after ``max_attempts`` — an e-mail never goes without its report.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from markupsafe import Markup

from services.notify.channels.base import Attachment, OutgoingEmail
from services.notify.models import Notification
from services.notify.recipients import Person, render_params
from services.notify.rendering import RenderError, render_email
from services.notify.report_files import ReportFiles, ReportMissing, file_path
from shared.db import UnitOfWork
from shared.pii import Sealer

REPORT_KINDS = frozenset({"report_ready"})
"""Kinds whose e-mail is a report: they need their files."""
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)

__all__ = ["REPORT_KINDS", "Report", "ReportMissing", "outgoing_email", "read_report"]


@dataclass(frozen=True)
class Report:
    """A report's e-mail parts: the HTML to show (None: no HTML form) and the files."""

    html: str | None
    attachments: list[Attachment]


def read_report(files: Any, source: ReportFiles) -> Report:
    """The report's files from ``source`` (only paths ``<report-id>/<name>``, never
    outside the report's own files): ``report.html`` as the body with its images inline,
    everything else attached. Raises ReportMissing."""
    html: str | None = None
    found: list[tuple[PurePosixPath, str, bytes]] = []
    for item in files if isinstance(files, list) else []:
        relative = str(item.get("path") or "") if isinstance(item, dict) else ""
        if file_path(relative) is None:
            raise RenderError(f"report file {relative!r} is outside the reports folder")
        path = PurePosixPath(relative)
        media = str(item.get("media_type") or mimetypes.guess_type(path.name)[0] or "")
        content = source.fetch(relative)
        if media == "text/html" and html is None:
            html = content.decode("utf-8")
        else:
            found.append((path, media or "application/octet-stream", content))
    attachments = []
    for path, media, content in found:
        cid = None
        if html is not None and media.startswith("image/"):
            pattern = re.compile(r"""(src\s*=\s*["'])""" + re.escape(path.name) + r"""(["'])""")
            cid = f"report-{re.sub(r'[^A-Za-z0-9]+', '-', path.stem)}@servicemonth"
            html, count = pattern.subn(rf"\g<1>cid:{cid}\g<2>", html)
            cid = cid if count else None
        attachments.append(Attachment(path.name, media, content, inline_cid=cid))
    if html is not None:
        body = _BODY.search(html)
        html = body.group(1).strip() if body else html
    return Report(html, attachments)


def outgoing_email(
    n: Notification,
    person: Person,
    uow: UnitOfWork,
    sealer: Sealer,
    reports: ReportFiles,
    to_masked: str | None,
) -> OutgoingEmail:
    """``n`` as an e-mail; RenderError when it cannot be rendered, ReportMissing when its
    report's files cannot be had now (from ``reports``)."""
    params = render_params(n, person, uow, sealer)
    attachments: list[Attachment] = []
    if n.kind in REPORT_KINDS:
        report = read_report(n.params.get("files"), reports)
        if report.html is None and not report.attachments:
            raise RenderError(f"{n.kind}: the report has no files")
        attachments = report.attachments
        if report.html is not None:
            # the reporting service built and escaped it (every text through redact)
            params["report_html"] = Markup(report.html)
        params["attached"] = [a.filename for a in attachments if not a.inline_cid]
    rendered = render_email(n.kind, params)
    return OutgoingEmail(
        out_id=str(n.id),
        to=person.email or "",
        to_masked=to_masked or "",
        kind=n.kind,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        attachments=attachments,
    )
