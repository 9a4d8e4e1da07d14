"""Staff accounts' rules without a database: what a role, a scope and a name may be, and
who may create whom (the operator above them)."""

from __future__ import annotations

import pytest

from services.registration.staff import refusal, scope_of, staff_name, staff_role
from shared.auth import Principal
from shared.bus import SUBSCRIPTIONS, _topic_match, binding_keys, listened_to
from shared.events import CATALOGUE

ADMIN = Principal(role="admin", scope="city")
OPERATOR = Principal(role="operator", scope="district:410303")


@pytest.mark.parametrize(
    ("raw", "role", "scope"),
    [
        ("community:410303001001", "community", "community:410303001001"),
        (" 410303001001 ", "community", "community:410303001001"),  # a bare code, by role
        ("U410303001", "unit", "unit:U410303001"),
        ("410303", "operator", "district:410303"),
        ("410303", "leader", "district:410303"),  # a leader's bare code, by its length
        ("410303001001", "leader", "community:410303001001"),
        ("city", "leader", "city"),
        ("ｃｉｔｙ", "leader", "city"),  # full-width, as an input method may type it
    ],
)
def test_a_scope_is_read_by_the_role(raw: str, role: str, scope: str) -> None:
    assert scope_of(raw, role) == scope


@pytest.mark.parametrize(
    ("raw", "role"),
    [
        ("unit:U410303001", "community"),
        ("city", "operator"),
        ("city", "community"),
        ("district:4103", "operator"),
        ("member:0b6f1c2e-0000-0000-0000-000000000000", "leader"),
    ],
)
def test_a_scope_of_another_kind_is_refused(raw: str, role: str) -> None:
    with pytest.raises(ValueError):
        scope_of(raw, role)


def test_roles_in_english_or_as_people_call_them() -> None:
    people = ("Community", "社区工作者", "单位组织员", "领导")
    assert [staff_role(r) for r in people] == ["community", "community", "unit", "leader"]
    for bad in ("admin", "member", "boss"):
        with pytest.raises(ValueError):
            staff_role(bad)


def test_a_name_is_trimmed_and_bounded() -> None:
    assert staff_name("  李红 （主任） ") == "李红 （主任）"
    for bad in ("", " ", "李" * 31, "李\x00红"):
        with pytest.raises(ValueError):
            staff_name(bad)


@pytest.mark.parametrize(
    ("role", "scope", "district", "allowed"),
    [
        ("community", "community:410303001001", "410303", True),
        ("unit", "unit:U410303001", "410303", True),
        ("leader", "district:410303", "410303", True),
        ("community", "community:410305001001", "410305", False),
        ("unit", "unit:U410300001", "410300", False),  # a city-level unit: the admin's
        ("leader", "city", None, False),
        ("operator", "district:410303", "410303", False),  # operators: the admin's
    ],
)
def test_an_operator_creates_below_them_in_their_district(
    role: str, scope: str, district: str | None, allowed: bool
) -> None:
    assert (refusal(OPERATOR, role, scope, district) is None) is allowed
    assert refusal(ADMIN, role, scope, district) is None
    assert refusal(Principal(role="leader", scope="city"), role, scope, district) is not None


def test_staff_events_are_in_the_catalogue_and_reach_notify_only() -> None:
    for event_type in ("staff.saved", "staff.disabled"):
        assert (event_type, 1) in CATALOGUE
        assert listened_to(event_type)
        hearing = [s for s in SUBSCRIPTIONS if f"410303.{event_type}" in _keys(s)]
        assert hearing == ["notify"]
    assert "*.staff.*" in binding_keys("notify", "410300")  # the city hears every district


def _keys(service: str) -> set[str]:
    """The routing keys of district 410303 that ``service``'s queue there takes."""
    return {
        key
        for key in ("410303.staff.saved", "410303.staff.disabled")
        for pattern in binding_keys(service, "410303")
        if _topic_match(key.split("."), pattern.split("."))
    }
