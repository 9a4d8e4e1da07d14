"""Pages of leaders (and operators, admins): the live summary of their scope with the
sub-scopes ranked by five-ones completion and the laggards, and their reports (the HTML
reporting builds, its charts and the xlsx, proxied with the person's token)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from services.web import labels, pages
from services.web.pages import ApiDep, Person

router = APIRouter()
Leader = Annotated[Person, Depends(pages.role("leader", "operator", "admin"))]
ReportId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$")]
FileName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")]
SCOPE = re.compile(r"^(city|(district|unit|community):[A-Za-z0-9_-]{1,40})$")
#: A report's own HTML: its inline styles and the charts beside it, nothing else; no script.
REPORT_CSP = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)
LEVEL_NAMES = {"district": "县（市）区", "unit": "单位", "community": "社区"}
#: Big numbers: (key of the summary, label).
NUMBERS = (
    ("members", "在册党员"),
    ("reported_in", "已报到"),
    ("dual_paired", "已双对接"),
    ("five_ones_complete", "“五个一”全部完成"),
    ("verified_hours", "已核实服务时长"),
    ("leading_cadres_active", "参与的领导干部"),
)
#: Rates shown as bars: (key of ``rates``, label).
RATES = (
    ("reported_in_rate", "报到率"),
    ("dual_registration_rate", "双报到率"),
    ("dual_pairing_rate", "双对接率"),
    ("five_ones_rate", "“五个一”完成率"),
    ("wish_claim_rate", "微心愿认领率"),
    ("wish_completion_rate", "微心愿完成率"),
    ("cadre_rate", "领导干部参与率"),
)
FUNNEL = (
    ("published", "已发布"),
    ("claimed", "已认领"),
    ("fulfilled", "已完成"),
    ("confirmed", "社区确认"),
)


#: What each rate the ranking may be by is divided by (a sub-scope where that is 0 has no
#: rate: it is shown last, as 暂无数据, never as a laggard).
DENOMINATORS = {
    "reported_in_rate": "members",
    "dual_registration_rate": "members",
    "dual_pairing_rate": "reported_in",
    "five_ones_rate": "reported_in",
    "cadre_rate": "leading_cadres",
}


def rates(summary: dict[str, Any]) -> list[tuple[str, float | None, str]]:
    """(label, rate, text) per rate; a rate with nothing to divide by is 暂无数据, not 0%."""
    funnel = summary.get("wish_funnel") or {}
    bases = {
        **{key: summary.get(field) for key, field in DENOMINATORS.items()},
        "wish_claim_rate": funnel.get("published"),
        "wish_completion_rate": funnel.get("claimed"),
    }
    shown: list[tuple[str, float | None, str]] = []
    for key, label in RATES:
        value = (summary.get("rates") or {}).get(key)
        if value is None or not bases.get(key):
            shown.append((label, None, "暂无数据"))
        else:
            shown.append((label, value, percent(value)))
    return shown


def percent(value: Any) -> str:
    """``1`` → ``100%``, ``0.6667`` → ``66.7%``: one decimal only when not whole."""
    if value is None:
        return "—"
    shown = round(float(value) * 100, 1)
    return f"{shown:.0f}%" if shown == int(shown) else f"{shown:.1f}%"


def ranked(ranking: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ranking's rows with data, renumbered, then those without (denominator 0)."""
    base = DENOMINATORS.get(str(ranking.get("by") or ""), "reported_in")
    rows, empty = [], []
    for row in ranking.get("ranked") or []:
        if row.get("value") is None or not row.get(base):
            empty.append({**row, "rank": None, "laggard": False, "text": "暂无数据"})
        else:
            rows.append({**row, "text": percent(row["value"])})
    previous, rank = None, 0
    for n, row in enumerate(rows, start=1):  # ties keep one rank, as the API gives them
        if row["value"] != previous:
            rank, previous = n, row["value"]
        row["rank"] = rank
    return rows, empty


@router.get("/leader")
async def overview(
    request: Request, api: ApiDep, person: Leader, scope: str | None = None
) -> Response:
    """The summary of ``scope`` (the person's own by default; a sub-scope to drill down)."""
    if scope is not None and not SCOPE.match(scope):
        raise pages.PageRefused(404, "没有找到这个范围")
    summary, ranking = await asyncio.gather(
        api.get("/summary", scope=scope), api.get("/summary/ranking", scope=scope)
    )
    rows, empty = ranked(ranking)
    five_base = summary.get("reported_in") or 0
    context = {
        "scope": scope or person.scope,
        "own": scope is None or scope == person.scope,
        "s": summary,
        "numbers": [(label, summary.get(key), key) for key, label in NUMBERS],
        "rates": rates(summary),
        "five": [
            (text, summary["five_ones"].get(kind, 0), five_base)
            for kind, text in labels.STATES["five_ones"].items()
        ],
        "funnel": [(text, summary["wish_funnel"].get(key)) for key, text in FUNNEL],
        "funnel_top": max([v for v in summary["wish_funnel"].values() if v] or [1]),
        "ranking": ranking,
        "rows": rows,
        "empty": empty,
        "laggards": [row for row in rows if row.get("laggard")],
        "level": LEVEL_NAMES.get(ranking.get("level", ""), ""),
    }
    return pages.render(request, "leader/overview.html", context)


@router.get("/leader/reports")
async def reports(request: Request, api: ApiDep, person: Leader) -> Response:
    found = await api.get("/reports")
    for report in found:
        report["by_name"] = {f["name"]: f for f in report.get("files") or []}
    return pages.render(request, "leader/reports.html", {"reports": found})


@router.get("/leader/reports/{report_id}/files/{name}")
async def report_file(api: ApiDep, person: Leader, report_id: ReportId, name: FileName) -> Response:
    """One file of a report, fetched with the person's token (reporting records the
    download). The HTML opens here, its charts (``ranking.png`` beside it) come the same way."""
    answer = await api.send("GET", f"/reports/{report_id}/files/{name}")
    media = answer.headers.get("content-type", "application/octet-stream")
    headers = {"Cache-Control": "private, no-store"}
    if name.endswith(".html"):
        headers["Content-Security-Policy"] = REPORT_CSP
        headers["Content-Disposition"] = "inline"
    elif not name.endswith(".png"):
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
    return Response(answer.content, media_type=media, headers=headers)
