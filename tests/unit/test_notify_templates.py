"""Notify's templates: every kind renders on every channel, strictly, escaped, within budget."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from markupsafe import Markup

from services.notify.rendering import (
    KINDS,
    MAX_SEGMENTS,
    SMS_PROVIDERS,
    TEMPLATES,
    RenderError,
    SmsTooLong,
    approval_text,
    load_sms_codes,
    render_email,
    render_sms,
    sample_params,
    segments,
)
from shared.vocabulary import FIVE_ONES

ALL_KINDS = sorted(KINDS)
EMAIL_KINDS = sorted(k for k, spec in KINDS.items() if "email" in spec.channels)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_kind_renders_its_sms_with_sample_data(kind: str) -> None:
    sms = render_sms(kind, sample_params(kind))
    assert sms.text.startswith("【在职党员进社区】") and sms.text.endswith(sms.body)
    assert "{" not in sms.text and "}" not in sms.text
    assert 1 <= sms.segments <= MAX_SEGMENTS
    assert set(sms.params) == set(KINDS[kind].sms_param_names)
    assert all(isinstance(v, str) and v for v in sms.params.values())
    assert {p: sms.code_for(p) for p in SMS_PROVIDERS}


@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_every_kind_renders_its_email_with_sample_data(kind: str) -> None:
    mail = render_email(kind, sample_params(kind))
    assert mail.subject and "\n" not in mail.subject and "{" not in mail.subject
    assert mail.text.strip() and "{" not in mail.text and "<" not in mail.text
    assert mail.html.startswith("<!DOCTYPE html>") and "{{" not in mail.html
    assert f"<title>{mail.subject}</title>" in mail.html or "&" in mail.subject


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_the_sms_is_a_plain_provider_template_over_its_params(kind: str) -> None:
    """What a provider makes of the approved text and our params is what we rendered."""
    sms = render_sms(kind, sample_params(kind))
    names = KINDS[kind].sms_param_names
    aliyun = approval_text(kind, "aliyun")
    tencent = approval_text(kind, "tencent")
    for i, name in enumerate(names, 1):
        aliyun = aliyun.replace("${" + name + "}", sms.params[name])
        tencent = tencent.replace("{" + str(i) + "}", sms.params[name])
    assert aliyun == sms.body
    assert tencent == sms.body


def test_every_kind_has_its_template_files_and_a_code_for_each_provider() -> None:
    codes = load_sms_codes()
    for kind, spec in KINDS.items():
        assert spec.audience in ("member", "community", "unit", "leader")
        assert "sms" in spec.channels and set(spec.channels) <= {"sms", "email"}
        assert (TEMPLATES / "sms" / f"{kind}.j2").is_file()
        # only the sign-in code is SMS only: it goes to a number, never to an address
        assert "email" in spec.channels or kind == "sign_in_code"
        for suffix in (".txt.j2", ".html.j2") if "email" in spec.channels else ():
            assert (TEMPLATES / "email" / f"{kind}{suffix}").is_file()
        for provider in SMS_PROVIDERS:
            assert codes[provider][kind]
    files = {p.name.split(".")[0] for p in (TEMPLATES / "sms").glob("*.j2")}
    assert files == set(KINDS), "a template without a kind, or a kind without a template"


def test_a_missing_param_is_refused_not_rendered_empty() -> None:
    params = sample_params("pairing_made")
    del params["contact"]
    with pytest.raises(RenderError, match="contact"):
        render_sms("pairing_made", params)
    with pytest.raises(RenderError, match="contact"):
        render_email("pairing_made", params)


def test_a_missing_param_of_the_subject_is_refused() -> None:
    params = sample_params("wish_claimed")
    del params["wish"]
    with pytest.raises(RenderError, match="wish"):
        render_email("wish_claimed", params)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(RenderError, match="unknown message kind"):
        render_sms("birthday", {})


def test_html_escapes_a_script_in_a_wish_title_and_text_keeps_it_verbatim() -> None:
    params = {**sample_params("wish_claimed"), "wish": "<script>alert(1)</script>"}
    mail = render_email("wish_claimed", params)
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert "<script>alert(1)</script>" in mail.text  # plain text is not HTML
    assert mail.subject == "微心愿“<script>alert(1)</script>”已被认领"


@pytest.mark.parametrize("typed", ["{{ 7*7 }}", "{% for x in range(3) %}x{% endfor %}", "${7*7}"])
def test_template_syntax_typed_into_a_wish_title_is_words_not_evaluated(typed: str) -> None:
    params = {**sample_params("wish_claimed"), "wish": typed}
    mail = render_email("wish_claimed", params)
    for rendered in (mail.subject, mail.text, render_sms("wish_claimed", params).text):
        assert typed in rendered and "49" not in rendered and "xxx" not in rendered


def test_report_html_is_embedded_only_when_marked_as_safe() -> None:
    params = {**sample_params("report_ready"), "report_html": '<img src="cid:chart1">'}
    assert '<img src="cid:chart1">' not in render_email("report_ready", params).html
    params["report_html"] = Markup('<img src="cid:chart1">')
    assert '<img src="cid:chart1">' in render_email("report_ready", params).html
    assert "完整报告见附件" in render_email("report_ready", sample_params("report_ready")).html


@pytest.mark.parametrize(
    ("length", "expected"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)]
)
def test_segments_are_70_characters_alone_and_67_when_split(length: int, expected: int) -> None:
    assert segments("党" * length) == expected


def test_an_emoji_takes_two_characters_of_a_segment() -> None:
    assert segments("党" * 69 + "🙂") == 2


def test_an_sms_over_the_segment_cap_is_refused() -> None:
    params = {**sample_params("wish_claimed"), "wish": "为社区独居老人更换厨房水龙头" * 15}
    with pytest.raises(SmsTooLong) as caught:
        render_sms("wish_claimed", params)
    assert caught.value.segments > MAX_SEGMENTS


def test_the_segment_count_includes_the_signature() -> None:
    params = {"scope": "西工区", "period": "第2周", "headline": ""}
    fixed = len(render_sms("report_ready", params).body)
    sms = render_sms("report_ready", {**params, "headline": "党" * (70 - fixed)})
    assert len(sms.body) == 70 and segments(sms.body) == 1
    assert sms.segments == 2  # 【在职党员进社区】 takes 9 of the 70


def test_weekly_progress_lists_exactly_the_missing_items_in_campaign_order() -> None:
    sms = render_sms("weekly_progress", {"name": "张三", "missing": ["team", "home_visit"]})
    assert "尚未完成：民情家访、加入服务团队，" in sms.text
    others = set(FIVE_ONES.values()) - {"民情家访", "加入服务团队"}
    assert not any(label in sms.text for label in others)
    mail = render_email("weekly_progress", {"name": "张三", "missing": ["policy_talk"]})
    assert "政策宣讲" in mail.html and "民情家访" not in mail.html


def test_a_reminder_of_nothing_is_refused() -> None:
    with pytest.raises(RenderError, match="missing is empty"):
        render_sms("weekly_progress", {"name": "张三", "missing": []})


def test_an_unknown_item_of_the_five_ones_is_refused() -> None:
    with pytest.raises(RenderError, match="not one of the five ones"):
        render_sms("countdown", {"name": "张三", "days_left": 3, "missing": ["fishing"]})


def test_names_in_a_batch_are_cut_to_three_and_counted() -> None:
    sms = render_sms(
        "members_reported_in",
        {"community": "王城社区", "count": 12, "names": ["张*", "李*", "王*", "赵*"]},
    )
    assert "新增12名在职党员报到：张*、李*、王*等，" in sms.text


def test_times_are_shown_in_shanghai_time() -> None:
    when = datetime(2016, 6, 26, 1, 0, tzinfo=UTC)
    sms = render_sms("kickoff", {"name": "张三", "when": when, "place": "王城广场"})
    assert "6月26日9:00" in sms.text
    from_json = render_sms("kickoff", {"name": "张三", "when": when.isoformat(), "place": "广场"})
    assert "6月26日9:00" in from_json.text


def test_dates_may_come_as_iso_strings_from_json() -> None:
    sms = render_sms("claim_expiring", {"name": "张三", "wish": "读物", "deadline": "2016-07-15"})
    assert "将于7月15日到期" in sms.text


def test_approval_texts_carry_each_providers_placeholders() -> None:
    assert approval_text("welcome", "aliyun").startswith("${name}同志，您已在${communities}")
    assert approval_text("welcome", "tencent").startswith("{1}同志，您已在{2}")
    with pytest.raises(RenderError):
        approval_text("welcome", "carrier-pigeon")


def test_an_operators_code_file_overrides_the_packaged_codes(tmp_path: Path) -> None:
    own = tmp_path / "codes.toml"
    own.write_text('[aliyun]\nwelcome = "SMS_987654321"\n', encoding="utf-8")
    codes = load_sms_codes(own)
    assert codes["aliyun"]["welcome"] == "SMS_987654321"
    assert codes["aliyun"]["digest"] == load_sms_codes()["aliyun"]["digest"]
    sms = render_sms("welcome", sample_params("welcome"), codes=codes)
    assert sms.code_for("aliyun") == "SMS_987654321"
    with pytest.raises(RenderError, match="no approved template code"):
        sms.code_for("carrier-pigeon")


def test_no_template_hard_codes_a_phone_number_or_an_address() -> None:
    for path in TEMPLATES.rglob("*.j2"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"1[3-9]\d{9}|@[a-z]", text), path
