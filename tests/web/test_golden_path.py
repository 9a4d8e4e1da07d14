"""The month's golden path in a phone's browser, across real processes on the embedded
default: a member signs in with the code from the file channel, reports in through a
community's QR link, claims a wish and records an activity; the community worker confirms
the report-in, verifies the record and confirms the wish; the member's page shows the
progress and the leader's summary counts it.

Every page on the way is screenshotted into ``test-artifacts/web/`` and checked by axe-core.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Page, expect

from services.demo_data import synthetic_member
from tests.web.look import look
from tests.web.site import COMMUNITY, Site

MEMBER = "13700004001"
WORKER = "13700004002"
LEADER = "13700004003"
ORGANISER = "13700004004"


def sign_in(site: Site, page: Page, phone: str) -> None:
    """On the sign-in page: the number, the code from the file channel, in."""
    seen = len(site.sms_lines())
    page.get_by_label("手机号").fill(phone)
    page.get_by_role("button", name="获取验证码").click()
    page.get_by_label("验证码").fill(site.code_for(phone, seen))
    page.get_by_role("button", name="登录").click()


def publish_wish(site: Site, title: str) -> str:
    with site.api() as api:
        wish = api.post(
            "/wishes",
            json={
                "community_code": COMMUNITY,
                "title": title,
                "description": "家中老人想要一台收音机",
                "category": "物品",
                "beneficiary_category": "elderly",
            },
        )
        assert wish.status_code == 201, wish.text
        wish_id = wish.json()["id"]
        for step in ("submit", "publish"):
            assert api.post(f"/wishes/{wish_id}/{step}").status_code == 200
        return str(wish_id)


def test_the_month_in_a_phone(site: Site, phone: Callable[[], Page]) -> None:
    problems: list[dict[str, Any]] = []
    person = synthetic_member(random.Random(4001), ["U410303001"], [COMMUNITY])
    site.staff(WORKER, "community", f"community:{COMMUNITY}", name="赵敏")
    site.staff(LEADER, "leader", "district:410303", name="钱进")
    publish_wish(site, "给独居老人送一台收音机")

    # A member scans the community's QR code and signs in with the SMS code.
    member = phone()
    member.goto(f"{site.url}/c/{COMMUNITY}")
    problems += look(member, "01-qr-landing")
    member.get_by_role("link", name="手机号登录并报到").click()
    problems += look(member, "02-sign-in")
    sign_in(site, member, MEMBER)

    # A new number: the registration form, the QR's community already chosen.
    expect(member.get_by_role("heading", name="党员注册（双报到）")).to_be_visible()
    expect(member.get_by_text("王城社区")).to_be_visible()
    problems += look(member, "03-register")
    member.get_by_label("姓名").fill(person["name"])
    member.get_by_label("身份证号").fill(person["id_number"])
    member.get_by_label("手机号").fill(MEMBER)
    member.get_by_label("工作单位").fill("西工区")
    member.get_by_label("西工区示例街道办事处").check()
    member.get_by_label("法律咨询").check()
    member.get_by_label("其他专长（可不填）").fill("摄影")
    member.get_by_label("周末").check()
    member.get_by_label("我已阅读并同意以上说明").check()
    member.get_by_role("button", name="提交注册").click()
    expect(member.get_by_text("注册成功")).to_be_visible()
    expect(member.get_by_text("待社区确认").first).to_be_visible()
    problems += look(member, "04-member-home")

    # The community worker sees it first thing on her page and confirms the report-in.
    worker = phone()
    worker.goto(f"{site.url}/login")
    sign_in(site, worker, WORKER)
    expect(worker.get_by_role("heading", name="王城社区")).to_be_visible()
    problems += look(worker, "11-community-today")
    worker.get_by_role("link", name="待确认报到").click()
    problems += look(worker, "12-community-reports")
    act_on_row(worker, person["name"], "确认报到")
    hours_before = verified_hours(site)

    # The member claims the wish (once pairing has heard of the confirmation) ...
    member.goto(f"{site.url}/me/wishes")
    problems += look(member, "05-wishes")
    claim(site, member, "给独居老人送一台收音机")
    expect(member.get_by_text("认领成功")).to_be_visible()
    problems += look(member, "06-wish-claimed")
    member.get_by_role("button", name="已完成").click()
    expect(member.get_by_text("已报告完成")).to_be_visible()

    # ... and records a home visit.
    member.get_by_role("link", name="五个一").click()
    member.get_by_label("服务类型").select_option(label="民情家访")
    member.get_by_label("日期").fill("2016-07-04")
    member.get_by_label("时长（小时）").fill("2")
    member.get_by_label("说明").fill("走访独居老人，了解用水困难")
    member.get_by_role("button", name="提交").click()
    expect(member.get_by_text("已提交，等待社区核实")).to_be_visible()
    problems += look(member, "07-records")

    # The worker verifies the record and confirms the wish.
    worker.goto(f"{site.url}/community/records")
    problems += look(worker, "13-community-records")
    act_on_row(worker, person["name"], "核实", outcome="民情家访 7月4日 2小时")
    worker.goto(f"{site.url}/community/wishes")
    problems += look(worker, "14-community-wishes")
    act_on_row(worker, "给独居老人送一台收音机", "确认已完成")
    for path, name in [
        ("/community/publish", "15-community-publish"),
        ("/community/pairing", "16-community-pairing"),
        ("/community/poster", "17-community-poster"),
    ]:
        worker.goto(site.url + path)
        problems += look(worker, name)

    # The member's page shows the progress: two of the five, two hours.
    member.goto(f"{site.url}/me")
    expect(member.get_by_text("已核实服务 2小时")).to_be_visible()
    expect(
        member.locator("section", has_text="五个一").get_by_text("2 / 5", exact=False)
    ).to_be_visible()
    problems += look(member, "08-member-progress")
    pdf = member.request.get(f"{site.url}/me/record.pdf")
    assert pdf.ok and pdf.body().startswith(b"%PDF")

    member.get_by_role("link", name="我的").click()
    problems += look(member, "09-settings")
    member.goto(f"{site.url}/me/withdraw")
    problems += look(member, "10-withdraw")

    # The district's leader: the live summary counts the member's two verified hours.
    site.wait(lambda: verified_hours(site) == hours_before + 2)
    leader = phone()
    leader.goto(f"{site.url}/login")
    sign_in(site, leader, LEADER)
    hours = leader.locator(".stat", has_text="已核实服务时长")
    expect(hours).to_contain_text(f"{hours_before + 2:g}小时")
    problems += look(leader, "18-leader-summary")
    site.cli("report", "run", "--scope", "district:410303")
    leader.get_by_role("link", name="报告", exact=True).click()
    problems += look(leader, "19-leader-reports")
    leader.get_by_role("link", name="查看报告").first.click()
    expect(leader.get_by_text("报到率").first).to_be_visible()
    problems += look(leader, "20-leader-report")

    # The unit's organiser sees the member among the unit's members.
    site.staff(ORGANISER, "unit", "unit:U410303001", name="孙红")
    unit = phone()
    unit.goto(f"{site.url}/login")
    sign_in(site, unit, ORGANISER)
    problems += look(unit, "21-unit-overview")
    for path, name in [("/unit/roster", "22-unit-roster"), ("/unit/members", "23-unit-members")]:
        unit.goto(site.url + path)
        problems += look(unit, name)

    assert not problems, problems


def claim(site: Site, member: Page, title: str) -> None:
    """Claim the wish, again while pairing has not yet heard of the confirmation."""

    def claimed() -> bool:
        item = member.locator("li", has_text=title)
        item.get_by_role("button", name="认领这个心愿").click()
        if member.get_by_text("认领成功").count():
            return True
        member.goto(f"{site.url}/me/wishes")
        return False

    site.wait(claimed)


def act_on_row(page: Page, has_text: str, button: str, outcome: str = "") -> None:
    """Press ``button`` in the list row naming ``has_text``; htmx swaps the row for its
    outcome (which names ``outcome``, by default the same)."""
    page.locator("li", has_text=has_text).get_by_role("button", name=button).click()
    expect(page.locator("li.done", has_text=outcome or has_text)).to_be_visible()


def verified_hours(site: Site) -> float:
    with site.api() as api:
        return float(
            api.get("/summary", params={"scope": "district:410303"}).json()["verified_hours"]
        )
