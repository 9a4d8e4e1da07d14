"""The five ones as a member records them, and the printable record of verified service
(服务记录证明)."""

from __future__ import annotations

from datetime import date, time
from typing import Any

from fpdf.fonts import FontFace

from services.web import labels
from services.web.posters import cjk_pdf

KINDS = labels.STATES["five_ones"]
MAX_HOURS = 12


def check(form: dict[str, str]) -> dict[str, str]:
    """The form's mistakes a person can fix before it goes to the API, in Chinese."""
    errors: dict[str, str] = {}
    if form["kind"] not in KINDS:
        errors["kind"] = "请选择服务类型"
    if not form["community_code"]:
        errors["community_code"] = "请选择在哪个社区服务"
    try:
        date.fromisoformat(form["date"])
    except ValueError:
        errors["date"] = "请选择服务日期"
    if form["hours"]:
        try:
            hours = float(form["hours"])
        except ValueError:
            hours = -1
        if not 0 < hours <= MAX_HOURS:
            errors["hours"] = f"请填写0到{MAX_HOURS}之间的小时数，如 1.5"
    elif not (form["start_time"] and form["end_time"]):
        errors["hours"] = "请填写时长，或者开始和结束时间"
    for key in ("start_time", "end_time"):
        if form[key]:
            try:
                time.fromisoformat(form[key])
            except ValueError:
                errors[key] = "请填写时间，如 09:30"
    return errors


def certificate(
    member: dict[str, Any],
    progress: dict[str, Any],
    verified: list[dict[str, Any]],
    places: dict[str, dict[str, Any]],
    today: date,
) -> bytes:
    """One A4 page (more if the list is long): who, what was verified, the hours."""
    pdf = cjk_pdf()
    pdf.add_page()
    pdf.set_font("cjk", size=20)
    pdf.cell(0, 14, "服务记录证明", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=11)
    pdf.cell(0, 8, "在职党员进社区服务月", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    done = [KINDS[k] for k in KINDS if progress.get(k)]
    lines = [
        f"姓名：{member['name']}    身份证号：{member['id_number']}",
        f"经社区核实的服务 {len(verified)} 次，"
        f"累计服务时长 {labels.hours(progress.get('hours'))}。",
        "“五个一”已完成：" + ("、".join(done) if done else "暂无"),
    ]
    if progress.get("complete"):
        lines.append("已完成全部“五个一”。")
    pdf.set_font("cjk", size=12)
    for line in lines:
        pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("cjk", size=10)
    widths = (28, 34, 70, 20)
    # the CJK family has one weight: headings in it, not in bold
    heading = FontFace(emphasis="", fill_color=(240, 240, 240))
    aligned = ("LEFT", "LEFT", "LEFT", "RIGHT")
    with pdf.table(col_widths=widths, text_align=aligned, headings_style=heading) as table:
        table.row(("日期", "类型", "社区", "时长"))
        for r in verified:
            place = places.get(r["community_code"], {}).get("name", r["community_code"])
            table.row((r["date"], KINDS.get(r["kind"], r["kind"]), place, f"{r['hours']:g}"))
    pdf.ln(8)
    pdf.set_font("cjk", size=11)
    pdf.cell(0, 8, f"出具日期：{today.year}年{today.month}月{today.day}日", align="R")
    return bytes(pdf.output())
