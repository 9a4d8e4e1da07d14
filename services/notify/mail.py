"""The e-mail a message becomes, and the report e-mail's body: the report itself.

``report_ready`` (from ``report.generated``) carries the report's files, relative to the
reports folder. Reporting writes them to ``$SERVICEMONTH_HOME/reports/<report-id>/``, and
notify reads them from the same place: SERVICEMONTH_HOME is the deployment's shared home
(deploy/compose.yaml mounts one volume there for every container; on one host it is one
folder), so ``settings.reports_dir`` is the same folder in both services. The HTML body is
``report.html`` with its ``<img src="ranking.png">`` and ``progress.png`` pointing at the
attached inline images (``cid:``); the spreadsheet is attached. A file not there (yet: a
volume that lags, a copy in progress) is :class:`ReportMissing`: the send waits and tries
again, and fails after ``max_attempts`` — an e-mail never goes without its report.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markupsafe import Markup

from services.notify.channels.base import Attachment, OutgoingEmail
from services.notify.models import Notification
from services.notify.recipients import Person, render_params
from services.notify.rendering import RenderError, render_email
from shared.db import UnitOfWork
from shared.pii import Sealer

REPORT_KINDS = frozenset({"report_ready"})
"""Kinds whose e-mail is a report: they need their files."""
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL | re.IGNORECASE)


class ReportMissing(Exception):
    """A file of the report is not in the reports folder (yet)."""


@dataclass(frozen=True)
class Report:
    """A report's e-mail parts: the HTML to show (None: no HTML form) and the files."""

    html: str | None
    attachments: list[Attachment]


def read_report(files: Any, reports_dir: Path) -> Report:
    """The report's files under ``reports_dir`` (never outside it): ``report.html`` as the
    body with its images inline, everything else attached. Raises ReportMissing."""
    root = reports_dir.resolve()
    html: str | None = None
    found: list[tuple[Path, str]] = []
    for item in files if isinstance(files, list) else []:
        relative = str(item.get("path") or "") if isinstance(item, dict) else ""
        path = (root / relative).resolve()
        if not relative or not path.is_relative_to(root):
            raise RenderError(f"report file {relative!r} is outside the reports folder")
        if not path.is_file():
            raise ReportMissing(f"report file {relative} is not in the reports folder")
        media = str(item.get("media_type") or mimetypes.guess_type(path.name)[0] or "")
        if media == "text/html" and html is None:
            html = path.read_text(encoding="utf-8")
        else:
            found.append((path, media or "application/octet-stream"))
    attachments = []
    for path, media in found:
        cid = None
        if html is not None and media.startswith("image/"):
            pattern = re.compile(r"""(src\s*=\s*["'])""" + re.escape(path.name) + r"""(["'])""")
            cid = f"report-{re.sub(r'[^A-Za-z0-9]+', '-', path.stem)}@servicemonth"
            html, count = pattern.subn(rf"\g<1>cid:{cid}\g<2>", html)
            cid = cid if count else None
        attachments.append(Attachment(path.name, media, path.read_bytes(), inline_cid=cid))
    if html is not None:
        body = _BODY.search(html)
        html = body.group(1).strip() if body else html
    return Report(html, attachments)


def outgoing_email(
    n: Notification,
    person: Person,
    uow: UnitOfWork,
    sealer: Sealer,
    reports_dir: Path,
    to_masked: str | None,
) -> OutgoingEmail:
    """``n`` as an e-mail; RenderError when it cannot be rendered, ReportMissing when its
    report's files are not there yet."""
    params = render_params(n, person, uow, sealer)
    attachments: list[Attachment] = []
    if n.kind in REPORT_KINDS:
        report = read_report(n.params.get("files"), reports_dir)
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
