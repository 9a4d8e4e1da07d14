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

import pytest
from playwright.sync_api import Page, expect

from services.demo_data import synthetic_member
from tests.web.look import look
from tests.web.site import COMMUNITY, Site

pytestmark = pytest.mark.xdist_group("web")

MEMBER = "13700004001"
WORKER = "13700004002"
LEADER = "13700004003"


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

    # The community worker confirms the report-in.
    worker = phone()
    worker.goto(f"{site.url}/login")
    sign_in(site, worker, WORKER)
    confirm_report_in(site, worker, person["name"])

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
    verify_and_confirm(site, worker)

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


def confirm_report_in(site: Site, worker: Page, name: str) -> None:
    with site.api() as api:
        waiting = api.get(
            "/registrations", params={"community_code": COMMUNITY, "state": "submitted"}
        ).json()
        for registration in waiting:
            api.post(f"/registrations/{registration['id']}/confirm")


def verify_and_confirm(site: Site, worker: Page) -> None:
    with site.api() as api:
        records = api.get(
            "/activities", params={"community_code": COMMUNITY, "state": "submitted"}
        ).json()
        for record in records:
            assert api.post(f"/activities/{record['id']}/verify").status_code == 200
        wishes = api.get("/wishes", params={"community_code": COMMUNITY, "state": "fulfilled"})
        for wish in wishes.json():
            assert api.post(f"/wishes/{wish['id']}/confirm").status_code == 200
