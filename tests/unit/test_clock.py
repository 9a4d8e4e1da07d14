"""A simulated clock moves only when told, and a file-backed one is shared between processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.clock import SimulatedClock, SystemClock, clock_for

CAMPAIGN_OPENS = datetime(2016, 6, 26, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_simulated_clock_stands_still_until_advanced() -> None:
    clock = SimulatedClock(CAMPAIGN_OPENS)

    assert clock.now() == CAMPAIGN_OPENS
    assert clock.now() == clock.now()


def test_simulated_clock_advances_by_the_delta_and_returns_the_new_time() -> None:
    clock = SimulatedClock(CAMPAIGN_OPENS)

    moved = clock.advance(timedelta(days=3, hours=2))

    assert moved == CAMPAIGN_OPENS + timedelta(days=3, hours=2)
    assert clock.now() == moved


def test_simulated_clock_tells_time_in_utc() -> None:
    assert SimulatedClock(CAMPAIGN_OPENS).now().tzinfo == UTC


def test_simulated_clock_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimulatedClock(datetime(2016, 6, 26, 8, 0))


def test_file_backed_clock_is_seen_by_a_second_instance_reading_the_same_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "clock"
    driver = SimulatedClock(CAMPAIGN_OPENS, path)
    follower = clock_for(path)

    driver.advance(timedelta(hours=5))

    assert follower.now() == CAMPAIGN_OPENS + timedelta(hours=5)


def test_file_backed_clock_moved_by_either_instance_moves_both(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    first = SimulatedClock(CAMPAIGN_OPENS, path)
    second = clock_for(path)
    assert isinstance(second, SimulatedClock)

    second.advance(timedelta(days=1))
    first.advance(timedelta(hours=1))

    assert first.now() == second.now() == CAMPAIGN_OPENS + timedelta(days=1, hours=1)


def test_opening_an_existing_clock_file_keeps_its_time(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    SimulatedClock(CAMPAIGN_OPENS, path).advance(timedelta(days=7))

    reopened = SimulatedClock(CAMPAIGN_OPENS, path)

    assert reopened.now() == CAMPAIGN_OPENS + timedelta(days=7)


def test_file_backed_clock_leaves_no_temporary_files_behind(tmp_path: Path) -> None:
    clock = SimulatedClock(CAMPAIGN_OPENS, tmp_path / "clock")
    clock.advance(timedelta(minutes=1))

    assert [p.name for p in tmp_path.iterdir()] == ["clock"]


def test_without_a_clock_file_a_process_uses_the_real_time() -> None:
    clock = clock_for(None)
    before = datetime.now(UTC)

    assert isinstance(clock, SystemClock)
    assert before <= clock.now() <= datetime.now(UTC)


def test_a_configured_clock_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="SERVICEMONTH_CLOCK_FILE"):
        clock_for(tmp_path / "missing")
