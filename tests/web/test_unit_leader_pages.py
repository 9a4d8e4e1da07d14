"""A unit organiser's and a leader's pages, through the browser's door: a roster uploaded
on the page lands and its progress ends in 已完成 with the right counts, a bad row is listed
and its error file opens; the unit's members are listed and exported; a leader's numbers are
GET /summary's; reports open through the web app, and only in their leader's scope."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openpyxl import Workbook, load_workbook

from services.demo_data import synthetic_member
from services.web.leader import percent, ranked, rates
from tests.web.site import Site, csrf

UNIT = "U410311001"  # 洛龙区示例服务中心: no other page test uses it
DISTRICT = "district:410311"
HOME = "410311001001"  # 开元社区
ORGANISER = "13700003001"
LEADER = "13700003101"
OTHER_LEADER = "13700003102"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
GOOD = 4


def people() -> list[dict[str, Any]]:
    """The roster's people: GOOD good ones, then one whose row will be refused."""
    rng = random.Random(3001)
    return [synthetic_member(rng, [UNIT], [HOME]) for _ in range(GOOD + 1)]


def roster() -> bytes:
    """A roster as a unit fills it in: GOOD good rows (one with a 专长 word not on the
    list), then one whose ID number has a wrong check character."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["姓名", "身份证号", "手机号", "居住社区代码", "专长"])
    for n, m in enumerate(people()):
        id_number = m["id_number"]
        if n == GOOD:
            id_number = id_number[:-1] + ("1" if id_number[-1] != "1" else "2")
        sheet.append([m["name"], id_number, m["phone"], HOME, "摄影" if n == 0 else "法律"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def stat(page: str, label: str) -> int:
    found = re.search(r"<b[^>]*>([\d.]+)(?:<small>[^<]*</small>)?</b>\s*" + re.escape(label), page)
    assert found, f"no {label} on the page"
    return int(float(found.group(1)))


@pytest.fixture(scope="module")
def organiser(site: Site) -> Iterator[httpx.Client]:
    """The unit's organiser, signed in once (a number gets one code a minute)."""
    site.staff(ORGANISER, "unit", f"unit:{UNIT}")
    with site.browser_client(ORGANISER) as web:
        yield web


@pytest.fixture(scope="module")
def leader(site: Site) -> Iterator[httpx.Client]:
    site.staff(LEADER, "leader", DISTRICT)
    with site.browser_client(LEADER) as web:
        yield web


@pytest.fixture(scope="module")
def uploaded(site: Site, organiser: httpx.Client) -> dict[str, Any]:
    """The organiser uploads the roster on the page and watches it until it is done."""
    web = organiser
    form = web.get("/unit/roster")
    assert form.status_code == 200 and "下载空白模板" in form.text
    sent = web.post(
        "/unit/roster",
        data={"csrf": csrf(form.text)},
        files={"file": ("花名册.xlsx", roster(), XLSX)},
    )
    assert sent.status_code == 303, sent.text
    page_url = sent.headers["location"]
    assert re.fullmatch(r"/unit/roster/[0-9a-f-]{36}", page_url)
    page = web.get(page_url)
    assert page.status_code == 200

    def finished() -> str | None:
        fragment = web.get(page_url + "/status").text
        return None if "hx-trigger" in fragment else fragment

    final = site.wait(finished)
    errors = web.get(page_url + "/errors.xlsx")
    return {"url": page_url, "page": page.text, "final": final, "errors": errors}


def test_a_roster_uploaded_on_the_page_lands_and_its_progress_ends_done(
    uploaded: dict[str, Any],
) -> None:
    final = uploaded["final"]
    assert "已完成" in final and 'hx-get="' not in final  # polling stopped
    assert stat(final, "总行数") == GOOD + 1
    assert stat(final, "成功导入") == GOOD
    assert stat(final, "已登记过（重复）") == 0
    assert stat(final, "有问题") == 1
    assert "身份证号校验位不对" in final  # the bad row, its field and the reason in Chinese
    assert "<td>6</td>" in final  # row 6: the header is row 1
    assert "专长「摄影」不在专长列表中" in final  # a note on a landed row


def test_the_bad_rows_download_as_a_workbook_to_fix(uploaded: dict[str, Any]) -> None:
    errors = uploaded["errors"]
    assert errors.status_code == 200
    assert errors.headers["content-type"].startswith(XLSX)
    assert "attachment" in errors.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(errors.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert "错误原因" in rows[0] and len(rows) == 2


def test_the_blank_template_comes_through_the_web_app(organiser: httpx.Client) -> None:
    template = organiser.get("/unit/roster/template.xlsx")
    assert template.status_code == 200
    sheet = load_workbook(io.BytesIO(template.content)).worksheets[0]
    assert "姓名" in [c.value for c in sheet[1]]


def test_the_units_members_are_listed_with_who_is_behind_and_exported(
    site: Site, organiser: httpx.Client, uploaded: dict[str, Any]
) -> None:
    web = organiser

    names = {m["name"] for m in people()[:GOOD]}

    def named() -> str | None:
        page = web.get("/unit/members").text
        listed = set(re.findall(r"<b>([^<]+)</b>", page))  # names in full: the organiser's own
        return page if names <= listed else None

    page = site.wait(named)
    assert f"共 {GOOD} 人" in page and page.count("○ 民情家访") == GOOD
    assert "编号" not in page  # no raw ids shown to people
    assert len(re.findall(r"1\d\d\*{4}\d{4}", page)) == GOOD  # phones, masked
    assert 'class="button secondary block" href="/unit/members.xlsx"' in page
    behind = web.get("/unit/members", params={"behind": "1"}).text
    assert f"未完成 {GOOD} 人" in behind
    overview = web.get("/unit")
    assert overview.status_code == 200
    assert "洛龙区示例服务中心" in overview.text
    assert stat(overview.text, "党员") == GOOD
    assert stat(overview.text, "尚未完成") == GOOD
    assert int(overview.headers["X-Api-Calls"]) <= 4
    export = web.get("/unit/members.xlsx")
    assert export.status_code == 200
    sheet = load_workbook(io.BytesIO(export.content)).active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("序号", "姓名", "手机号") and len(rows) == GOOD + 1
    assert {r[1] for r in rows[1:]} == names
    assert all(re.fullmatch(r"1\d\d\*{4}\d{4}", str(r[2])) for r in rows[1:])
    assert "<meter" in overview.text.split('<section class="card">', 1)[1]  # in the card
    assert all(name in overview.text for name in names)  # who is behind, by name


def test_another_units_organiser_and_a_member_cannot_open_the_pages(
    site: Site, uploaded: dict[str, Any]
) -> None:
    site.staff("13700003002", "unit", "unit:U410305001")
    with site.browser_client("13700003002") as web:
        assert web.get(uploaded["url"]).status_code == 404  # another unit's roster
        assert web.get("/leader").status_code == 403
    with httpx.Client(base_url=site.url) as anonymous:
        assert anonymous.get("/unit").status_code == 303


def test_a_leaders_overview_shows_the_summary_and_ranks_the_communities(
    site: Site, leader: httpx.Client, uploaded: dict[str, Any]
) -> None:
    with site.api() as api:
        site.wait(lambda: api.get("/summary", params={"scope": DISTRICT}).json()["members"])
        summary = api.get("/summary", params={"scope": DISTRICT}).json()
    page = leader.get("/leader")
    assert page.status_code == 200
    assert int(page.headers["X-Api-Calls"]) == 2
    for key, label in (
        ("members", "在册党员"),
        ("reported_in", "已报到"),
        ("dual_paired", "已双对接"),
        ("five_ones_complete", "“五个一”全部完成"),
        ("leading_cadres_active", "参与的领导干部"),
    ):
        assert stat(page.text, label) == summary[key], key
    assert "社区排名（按“五个一”完成率）" in page.text and "开元社区" in page.text
    # nobody has reported in yet: no rate to rank, so no laggard either
    assert "暂无数据" in page.text and "落后" not in page.text
    assert "双报到率" in page.text and "双注册率" not in page.text
    assert ".0%" not in page.text


def test_rates_are_whole_percents_and_scopes_without_data_come_last() -> None:
    assert [percent(v) for v in (1, 0, 0.5, 0.6667, 0.99999, None)] == [
        "100%", "0%", "50%", "66.7%", "100%", "—",
    ]  # fmt: skip
    rows = [
        {"scope": "community:1", "rank": 1, "value": 0.0, "laggard": True, "reported_in": 0},
        {"scope": "community:2", "rank": 2, "value": 0.5, "laggard": True, "reported_in": 4},
        {"scope": "community:3", "rank": 3, "value": 0.25, "laggard": True, "reported_in": 4},
    ]
    shown, empty = ranked({"by": "five_ones_rate", "ranked": rows})
    assert [(r["scope"], r["rank"], r["text"]) for r in shown] == [
        ("community:2", 1, "50%"),
        ("community:3", 2, "25%"),
    ]
    assert [(r["scope"], r["laggard"], r["text"]) for r in empty] == [
        ("community:1", False, "暂无数据")
    ]


def test_a_rate_with_nothing_to_divide_by_is_no_data_not_zero() -> None:
    """A district where nobody reported in yet and no wish was published: its five-ones
    rate is not 0% (nobody failed), it is not known yet."""
    summary = {
        "members": 10,
        "reported_in": 0,
        "leading_cadres": 2,
        "wish_funnel": {"published": 0, "claimed": 0},
        "rates": {
            "reported_in_rate": 0.0,
            "dual_registration_rate": 0.0,
            "dual_pairing_rate": 0.0,
            "five_ones_rate": 0.0,
            "wish_claim_rate": 0.0,
            "wish_completion_rate": 0.0,
            "cadre_rate": 0.5,
        },
    }
    assert [(label, text) for label, _, text in rates(summary)] == [
        ("报到率", "0%"),
        ("双报到率", "0%"),
        ("双对接率", "暂无数据"),
        ("“五个一”完成率", "暂无数据"),
        ("微心愿认领率", "暂无数据"),
        ("微心愿完成率", "暂无数据"),
        ("领导干部参与率", "50%"),
    ]


def test_reports_open_through_the_web_app_only_in_their_leaders_scope(
    site: Site, leader: httpx.Client, uploaded: dict[str, Any]
) -> None:
    site.staff(OTHER_LEADER, "leader", "district:410305")
    site.cli("report", "run", "--scope", DISTRICT)
    web = leader
    listed = web.get("/leader/reports")
    assert listed.status_code == 200
    links = re.findall(r'href="(/leader/reports/[0-9a-f-]{36}/files/report\.html)"', listed.text)
    assert links, listed.text
    html = web.get(links[0])
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "script-src" not in html.headers["content-security-policy"]
    assert "img-src 'self'" in html.headers["content-security-policy"]
    assert "在职党员进社区服务月" in html.text
    for image in re.findall(r'<img src="([a-z]+\.png)"', html.text):
        png = web.get(links[0].rsplit("/", 1)[0] + "/" + image)
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    xlsx = web.get(links[0].replace("report.html", "report.xlsx"))
    assert xlsx.status_code == 200
    assert load_workbook(io.BytesIO(xlsx.content)).sheetnames
    with site.browser_client(OTHER_LEADER) as other:
        assert links[0] not in other.get("/leader/reports").text
        refused = other.get(links[0])
        assert refused.status_code == 404
        assert "没有找到" in refused.text
