"""What members type in is checked and normalised: ID numbers, mobiles, names (docs/domain.md)."""

from __future__ import annotations

from datetime import date

import pytest

from services.registration.rules import (
    check_character,
    community_code,
    id_number,
    mobile,
    name,
    skills,
)
from shared.vocabulary import SKILL_SYNONYMS, SKILLS

TODAY = date(2016, 7, 1)


def with_check(first17: str) -> str:
    """An 18-character ID number whose check character is right, so other rules are tested."""
    return first17 + check_character(first17)


# --- ID numbers -----------------------------------------------------------------------


def test_check_character_of_the_known_good_number_is_x() -> None:
    assert check_character("11010519491231002") == "X"


@pytest.mark.parametrize("raw", ["11010519491231002X", "410302195001010015"])
def test_valid_id_number_is_accepted_unchanged(raw: str) -> None:
    assert id_number(raw, TODAY) == raw


def test_id_number_under_an_old_luoyang_region_code_is_accepted() -> None:
    jili = with_check("41030619700315002")

    assert id_number(jili, TODAY) == jili


def test_id_number_with_spaces_and_a_lower_case_x_is_normalised() -> None:
    assert id_number(" 110105 19491231 002x ", TODAY) == "11010519491231002X"


def test_fifteen_digit_id_number_is_converted_to_eighteen() -> None:
    expected = "41030219500101001" + check_character("41030219500101001")

    assert id_number("410302500101001", TODAY) == expected


@pytest.mark.parametrize("raw", ["11010519491231002", "1101051949123100299", "11010519491231002Y"])
def test_id_number_of_the_wrong_shape_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="18 characters"):
        id_number(raw, TODAY)


def test_id_number_with_a_wrong_check_character_is_refused() -> None:
    with pytest.raises(ValueError, match="check character"):
        id_number("110105194912310021", TODAY)


@pytest.mark.parametrize("birth", ["19900230", "19890229", "19901301", "19900000"])
def test_id_number_with_an_impossible_birth_date_is_refused(birth: str) -> None:
    with pytest.raises(ValueError, match="not a real date"):
        id_number(with_check(f"410303{birth}001"), TODAY)


def test_id_number_born_in_the_future_is_refused() -> None:
    with pytest.raises(ValueError, match="future"):
        id_number(with_check("41030320160702001"), TODAY)


def test_member_under_eighteen_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 18"):
        id_number(with_check("41030320000101001"), TODAY)


def test_member_is_accepted_on_their_eighteenth_birthday_and_not_the_day_before() -> None:
    born_18_today = with_check("41030319980701001")
    born_18_tomorrow = with_check("41030319980702001")

    assert id_number(born_18_today, TODAY) == born_18_today
    with pytest.raises(ValueError, match="at least 18"):
        id_number(born_18_tomorrow, TODAY)


def test_id_number_typed_with_full_width_digits_is_normalised_to_ascii() -> None:
    full_width = "１１０１０５１９４９１２３１００２X"

    assert id_number(full_width, TODAY) == "11010519491231002X"


@pytest.mark.parametrize("x", ["Ｘ", "ｘ", "x"])
def test_a_full_width_or_lower_case_x_is_the_check_character_x(x: str) -> None:
    assert id_number("１１０１０５１９４９１２３１００２" + x, TODAY) == "11010519491231002X"


@pytest.mark.parametrize("raw", ["410303001001", "４１０３０３００１００１", " 410303 001 001 ",
                                 "410303-001-001"])  # fmt: skip
def test_a_community_code_is_folded_to_ascii_digits(raw: str) -> None:
    assert community_code(raw) == "410303001001"


# --- skills (专长) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "mapped", "own"),
    [
        ("法律、教育", ["法律咨询", "教育辅导"], []),
        ("维修", ["家电维修", "水电维修"], []),
        ("唱歌跳舞", ["文艺演出"], []),
        ("会修电脑", ["信息技术"], []),
        ("摄影", [], ["摄影"]),
        ("医疗护理,心理疏导；书法/绘画 IT", ["医疗护理", "心理疏导", "书法绘画", "信息技术"], []),
        ("律师，钓鱼  摄影", ["法律咨询"], ["钓鱼", "摄影"]),
        ("擅长法律咨询等", ["法律咨询"], []),
        (["护士", "家教", "调解"], ["医疗护理", "教育辅导", "矛盾调解"], []),
        ("老", [], ["老"]),  # one character says too little
        ("", [], []),
    ],
)  # fmt: skip
def test_free_text_skills_map_to_the_vocabulary_and_keep_the_rest(
    raw: str | list[str], mapped: list[str], own: list[str]
) -> None:
    assert skills(raw) == (mapped, own)


def test_own_words_are_bounded_and_never_hold_a_mobile_in_clear() -> None:
    mapped, own = skills(["摄影 13812348000", *(f"爱好{n}" for n in range(30)), "长" * 80])

    assert mapped == []
    assert own[:2] == ["摄影", "138****8000"]
    assert len(own) == 10


def test_every_synonym_names_vocabulary_terms() -> None:
    assert {t for terms in SKILL_SYNONYMS.values() for t in terms} <= set(SKILLS)
    assert all(skills(term) == ([term], []) for term in SKILLS)


# --- mobiles --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["13812348000", "+86 138-1234-8000", "0086 138 1234 8000", "8613812348000", "+8613812348000",
     "１３８１２３４８０００", "＋８６ １３８－１２３４－８０００", "138—1234—8000",
     "(+86) 138.1234.8000", "86 13812348000"],
)  # fmt: skip
def test_mobile_is_normalised_to_eleven_digits(raw: str) -> None:
    assert mobile(raw) == "13812348000"


@pytest.mark.parametrize(
    "raw",
    ["138123480001", "1381234800", "12812348000", "10012348000", "23812348000", "1381234800a"],
)
def test_mobile_that_is_not_a_mainland_mobile_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="11-digit mainland mobile"):
        mobile(raw)


def test_country_code_is_not_stripped_when_what_remains_is_not_a_mobile() -> None:
    with pytest.raises(ValueError):
        mobile("+86 010-1234-5678")


# --- names ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["张三", "阿依古丽·买买提", "欧阳娜娜"])
def test_chinese_name_is_accepted(raw: str) -> None:
    assert name(raw) == raw


@pytest.mark.parametrize("dot", ["•", "・", "．"])
def test_look_alike_dot_in_a_minority_name_becomes_the_middle_dot(dot: str) -> None:
    assert name(f"阿依古丽{dot}买买提") == "阿依古丽\u00b7买买提"


def test_name_is_trimmed() -> None:
    assert name("  张三 ") == "张三"


@pytest.mark.parametrize(
    "raw", ["张3", "张", "Zhang San", "张San", "张 三", "·张三", "张" * 31, ""]
)
def test_name_that_is_not_two_to_thirty_han_characters_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="2–30 Chinese characters"):
        name(raw)


@pytest.mark.parametrize("raw", ["张·", "阿依古丽·"])
def test_name_ending_with_a_middle_dot_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        name(raw)
