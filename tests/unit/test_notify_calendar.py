"""The reminder calendar: campaign-relative days in Asia/Shanghai, late slots, bad files."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import String

from services.notify.calendar import SLOT_DATE, calendar, due_slots, max_job_name
from services.notify.models import Notification
from shared.config import ConfigError, load


def settings(**env: str):  # type: ignore[no-untyped-def]
    return load({f"SERVICEMONTH_{k}": v for k, v in env.items()})


def slots(job: str, **env: str) -> list[str]:
    cal = calendar(settings(**env))
    return [o.slot for o in cal.occurrences() if o.job.name == job]


def test_the_kickoff_comes_the_day_before_at_nine_and_the_morning_itself_at_eight() -> None:
    occurrences = calendar(settings()).occurrences()
    kickoff = [o for o in occurrences if o.job.kind == "kickoff"]
    assert [o.due_at for o in kickoff] == [
        datetime(2016, 6, 25, 1, 0, tzinfo=UTC),  # 09:00 in Asia/Shanghai
        datetime(2016, 6, 26, 0, 0, tzinfo=UTC),  # 08:00
    ]


def test_weekly_messages_stop_where_the_countdown_begins() -> None:
    assert slots("weekly_progress") == ["2016-07-03", "2016-07-10", "2016-07-17"]
    assert slots("cadre_reminder") == ["2016-07-03", "2016-07-10", "2016-07-17"]
    assert slots("countdown") == ["2016-07-24", "2016-07-28", "2016-07-30"]
    assert slots("unit_behind") == ["2016-07-03", "2016-07-10", "2016-07-17", "2016-07-24"]


def test_the_calendar_follows_the_configured_campaign() -> None:
    env = {"CAMPAIGN_START": "2024-03-01", "CAMPAIGN_END": "2024-03-31"}
    assert slots("countdown", **env) == ["2024-03-24", "2024-03-28", "2024-03-30"]
    assert slots("kickoff_eve", **env) == ["2024-02-29"]


def test_a_schedule_file_replaces_the_default(tmp_path: Path) -> None:
    path = tmp_path / "schedule.json"
    path.write_text(
        json.dumps(
            [
                {
                    "job": "daily",
                    "kind": "weekly_progress",
                    "audience": "incomplete_members",
                    "at": "12:30",
                    "every": 1,
                    "from": "end-2",
                    "until": "end",
                },
            ]
        )
    )
    cal = calendar(settings(NOTIFY_REMINDER_SCHEDULE=str(path)))
    assert [o.slot for o in cal.occurrences()] == ["2016-07-29", "2016-07-30", "2016-07-31"]
    assert cal.occurrences()[0].due_at == datetime(2016, 7, 29, 4, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"job": "x", "audience": "everyone", "at": "09:00", "days": ["start"]}, "audience"),
        ({"job": "x", "audience": "members", "at": "9 am", "days": ["start"]}, "HH:MM"),
        ({"job": "x", "audience": "members", "at": "09:00", "days": ["monday"]}, "'start-1'"),
        ({"job": "x", "audience": "members", "at": "09:00", "every": 0}, "every"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_setting(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps([entry]))
    with pytest.raises(ConfigError, match="SERVICEMONTH_REMINDER_SCHEDULE") as info:
        calendar(settings(REMINDER_SCHEDULE=str(path)))
    assert message in str(info.value)


def write(tmp_path: Path, *jobs: str) -> str:
    path = tmp_path / "schedule.json"
    entry = {"kind": "countdown", "audience": "incomplete_members", "at": "09:00"}
    path.write_text(json.dumps([{"job": job, **entry, "days": ["end-1"]} for job in jobs]))
    return str(path)


def test_a_job_name_too_long_for_its_slots_is_refused_when_the_calendar_is_loaded(
    tmp_path: Path,
) -> None:
    """A message's slot is ``<job>:YYYY-MM-DD`` in ``notifications.slot``: the name must fit."""
    column_type = Notification.__table__.c.slot.type
    assert isinstance(column_type, String) and column_type.length
    column = column_type.length
    limit = max_job_name()
    assert limit == min(column - SLOT_DATE, 100)  # reminder_runs.job: 100
    longest = "j" * limit
    cal = calendar(settings(REMINDER_SCHEDULE=write(tmp_path, longest)))
    assert len(cal.occurrences()[0].key) == column

    too_long = "a" * (limit - 3) + "_xy" + "z"
    with pytest.raises(ConfigError, match="SERVICEMONTH_REMINDER_SCHEDULE") as info:
        calendar(settings(REMINDER_SCHEDULE=write(tmp_path, "countdown", too_long)))
    assert too_long in str(info.value) and f"at most {limit}" in str(info.value)


def test_a_job_of_a_kind_without_templates_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "schedule.json"
    entry = {"job": "nudge", "audience": "members", "at": "09:00", "days": ["start"]}
    path.write_text(json.dumps([entry]))  # no "kind": the job's name, which has no templates
    with pytest.raises(ConfigError, match="SERVICEMONTH_REMINDER_SCHEDULE") as info:
        calendar(settings(REMINDER_SCHEDULE=str(path)))
    assert "nudge" in str(info.value) and "templates" in str(info.value)


def test_a_bad_grace_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="SERVICEMONTH_REMINDER_GRACE_HOURS"):
        calendar(settings(NOTIFY_REMINDER_GRACE_HOURS="a day"))


def test_a_slot_missed_by_hours_runs_late_and_one_missed_by_days_is_skipped() -> None:
    cal = calendar(settings())
    now = datetime(2016, 7, 10, 1, 0, tzinfo=UTC) + timedelta(hours=5)  # 14:00 on 10 July
    plan = {o.key: what for o, what in due_slots(cal, now, set())}
    assert plan["weekly_progress:2016-07-10"] == "sent"
    assert plan["weekly_progress:2016-07-03"] == "skipped"
    assert plan["kickoff_eve:2016-06-25"] == "skipped"
    done = {("weekly_progress", "2016-07-10")}
    assert "weekly_progress:2016-07-10" not in {o.key for o, _ in due_slots(cal, now, done)}


def test_of_two_late_slots_of_one_kind_only_the_latest_is_sent() -> None:
    cal = calendar(settings())
    now = datetime(2016, 6, 26, 0, 30, tzinfo=UTC)  # 08:30 on the first day; eve not swept
    plan = {o.key: what for o, what in due_slots(cal, now, set())}
    assert plan == {"kickoff_eve:2016-06-25": "superseded", "kickoff_day:2016-06-26": "sent"}


def test_nothing_is_due_before_the_first_slot() -> None:
    cal = calendar(settings())
    assert due_slots(cal, datetime(2016, 6, 25, 0, 59, tzinfo=UTC), set()) == []
    assert cal.start == date(2016, 6, 26)
