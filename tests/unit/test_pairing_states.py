"""The pairing service's state machines are docs/domain.md's, and the rules of hours hold."""

from __future__ import annotations

import uuid
from datetime import date, time

import pytest

from services.pairing import activities, teams, wishes
from services.pairing.activities import RecordIn, check_time
from shared.config import ConfigError, load
from shared.events import WISH_EVENTS

CAMPAIGN = (date(2016, 6, 26), date(2016, 7, 31))
TODAY = date(2016, 7, 31)


def edges(table: dict[str, tuple[str, ...]]) -> set[tuple[str, str]]:
    return {(a, b) for a, targets in table.items() for b in targets}


def test_the_wish_machine_is_the_domain_s() -> None:
    assert edges(wishes.TRANSITIONS) == {
        ("collected", "pending_review"),
        ("collected", "published"),
        ("pending_review", "published"),
        ("pending_review", "rejected"),
        ("published", "claimed"),
        ("published", "withdrawn"),
        ("published", "expired"),
        ("claimed", "published"),
        ("claimed", "fulfilled"),
        ("fulfilled", "confirmed"),
        ("confirmed", "evaluated"),
    }


def test_a_claim_only_ever_leaves_the_active_state() -> None:
    assert edges(wishes.CLAIM_TRANSITIONS) == {
        ("active", "realized"),
        ("active", "cancelled"),
        ("active", "revoked"),
        ("active", "expired"),
    }


def test_a_service_record_is_verified_or_returned_and_verified_is_final() -> None:
    assert edges(activities.TRANSITIONS) == {("submitted", "verified"), ("submitted", "returned")}


def test_every_state_of_every_machine_is_listed_and_every_target_is_a_state() -> None:
    for table in (wishes.TRANSITIONS, wishes.CLAIM_TRANSITIONS, activities.TRANSITIONS):
        assert {b for _, b in edges(table)} <= set(table)
    assert set(teams.TRANSITIONS) == set(teams.EVENTS)


def test_members_see_no_wish_before_it_is_published() -> None:
    assert not {"collected", "pending_review", "rejected"} & set(wishes.PUBLIC)


def test_each_wish_event_name_exists_in_the_catalogue() -> None:
    used = {"collected", "submitted", "published", "rejected", "withdrawn", "expired"}
    used |= {"claimed", "released", "fulfilled", "confirmed", "evaluated"}
    assert used == set(WISH_EVENTS)


def test_the_claim_period_defaults_to_seven_days_and_is_configurable() -> None:
    assert wishes.claim_days(load({})) == 7
    assert wishes.claim_days(load({"SERVICEMONTH_PAIRING_CLAIM_DAYS": "3"})) == 3
    assert wishes.claim_days(load({"SERVICEMONTH_CLAIM_DAYS": "5"})) == 5
    with pytest.raises(ConfigError, match="CLAIM_DAYS"):
        wishes.claim_days(load({"SERVICEMONTH_PAIRING_CLAIM_DAYS": "a week"}))


def record(**kw: object) -> RecordIn:
    base: dict[str, object] = {
        "member_id": uuid.uuid4(),
        "kind": "home_visit",
        "community_code": "410303001001",
        "day": date(2016, 7, 1),
    }
    return RecordIn(**{**base, **kw})  # type: ignore[arg-type]


def fields(r: RecordIn) -> list[str]:
    return [e["field"] for e in check_time(r, CAMPAIGN, TODAY)[3]]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"hours": 0.0}, "hours"),
        ({"hours": 12.5}, "hours"),
        ({}, "hours"),
        ({"hours": 2.0, "day": date(2016, 6, 25)}, "date"),
        ({"hours": 2.0, "day": date(2016, 8, 1)}, "date"),
        ({"start": time(9)}, "end_time"),
        ({"start": time(11), "end": time(9)}, "end_time"),
        ({"start": time(6), "end": time(19)}, "hours"),
        ({"hours": 1.0, "start": time(9), "end": time(11)}, "hours"),
    ],
)
def test_bad_hours_and_dates_are_named(kw: dict[str, object], field: str) -> None:
    assert fields(record(**kw)) == [field]


def test_hours_are_the_span_of_the_times_when_times_are_given() -> None:
    hours, starts, ends, errors = check_time(
        record(start=time(9, 0), end=time(11, 30)), CAMPAIGN, TODAY
    )
    assert (hours, errors) == (2.5, [])
    assert starts is not None and ends is not None and starts.utcoffset() is not None


def test_the_whole_window_is_inside_and_twelve_hours_are_allowed() -> None:
    assert fields(record(hours=12.0, day=CAMPAIGN[0])) == []
    assert fields(record(hours=0.5, day=CAMPAIGN[1])) == []


def test_progress_is_complete_only_with_all_five_kinds() -> None:
    done = activities.Progress(done=set(activities.KINDS[:4]), hours=3.0)
    assert not done.complete and done.view()["missing"] == ["team"]
    done.done.add("team")
    assert done.view() | {"hours": 3.0} == {
        **dict.fromkeys(activities.KINDS, True),
        "complete": True,
        "hours": 3.0,
        "missing": [],
    }
