"""The filters notify's templates and ``sms_params`` expressions use (see rendering).

They raise :class:`RenderError` on a value they cannot show, so a message is refused rather
than rendered wrong. The five ones' names are the campaign's (``shared.vocabulary``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from shared.config import CAMPAIGN_TZ
from shared.vocabulary import FIVE_ONES


class RenderError(ValueError):
    """A message cannot be rendered: unknown kind, missing or empty param, too long."""


def as_list(value: object) -> list[Any]:
    """A list param given as one string (or a tuple) becomes a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    return [value]


def five_ones(keys: object) -> list[str]:
    """``["wish", "home_visit"]`` → ``["民情家访", "认领微心愿"]`` (the campaign's order)."""
    wanted = set(as_list(keys))
    unknown = wanted - FIVE_ONES.keys()
    if unknown:
        raise RenderError(f"not one of the five ones: {', '.join(sorted(map(str, unknown)))}")
    return [label for key, label in FIVE_ONES.items() if key in wanted]


def activity_label(key: object) -> str:
    try:
        return FIVE_ONES[str(key)]
    except KeyError:
        raise RenderError(f"not one of the five ones: {key}") from None


def brief(items: object, limit: int = 3) -> str:
    """The first ``limit`` items, then ``等`` when there are more."""
    values = [str(v) for v in as_list(items)]
    return "、".join(values[:limit]) + ("等" if len(values) > limit else "")


def cn_date(value: object) -> str:
    """``2016-07-15`` → ``7月15日`` (Asia/Shanghai)."""
    when = _when(value)
    return f"{when.month}月{when.day}日"


def cn_datetime(value: object) -> str:
    """``2016-06-26T01:00Z`` → ``6月26日9:00`` (Asia/Shanghai)."""
    when = _when(value)
    if not isinstance(when, datetime):
        return cn_date(when)
    return f"{when.month}月{when.day}日{when.hour}:{when.minute:02d}"


def _when(value: object) -> date:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            raise RenderError(f"not a date: {value!r}") from None
    if isinstance(value, datetime):
        return value.astimezone(CAMPAIGN_TZ) if value.tzinfo else value
    if isinstance(value, date):
        return value
    raise RenderError(f"not a date: {value!r}")


FILTERS: dict[str, Callable[..., Any]] = {
    "as_list": as_list,
    "five_ones": five_ones,
    "activity_label": activity_label,
    "brief": brief,
    "cn_date": cn_date,
    "cn_datetime": cn_datetime,
}
"""Every filter, by the name templates use."""
