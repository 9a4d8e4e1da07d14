"""Validation rules for what members type in (GB 11643-1999 ID numbers, mobiles, names).

Each function returns the normalised value or raises ``ValueError`` with a message a
member can act on. (The registration issue completes these: region codes ever valid,
allocated mobile prefixes, look-alike dots.)
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def check_character(first17: str) -> str:
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def id_number(raw: str, today: date) -> str:
    """The 18-character ID number, converted from 15 digits when needed."""
    # NFKC folds the full-width digits a Chinese input method types into ASCII.
    value = re.sub(r"\s+", "", unicodedata.normalize("NFKC", raw)).upper()
    if re.fullmatch(r"[0-9]{15}", value):
        body = value[:6] + "19" + value[6:]
        value = body + check_character(body)
    if not re.fullmatch(r"[0-9]{17}[0-9X]", value):
        raise ValueError("must be 18 characters: 17 digits and a digit or X")
    if check_character(value[:17]) != value[17]:
        raise ValueError("check character does not match (GB 11643-1999)")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise ValueError("birth date is not a real date") from None
    if born > today:
        raise ValueError("birth date is in the future")
    if (today.year - born.year) - ((today.month, today.day) < (born.month, born.day)) < 18:
        raise ValueError("member must be at least 18 years old")
    return value


def mobile(raw: str) -> str:
    """An 11-digit mainland mobile, without +86 / 0086 / spaces / dashes."""
    value = re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", raw))
    value = re.sub(r"^(\+86|0086|86)(?=1\d{10}$)", "", value)
    if not re.fullmatch(r"1[3-9]\d{9}", value):
        raise ValueError("must be an 11-digit mainland mobile number starting 13–19")
    return value


def name(raw: str) -> str:
    """2–30 Han characters, parts of a minority name joined by U+00B7."""
    value = unicodedata.normalize("NFC", raw.strip())
    value = re.sub(r"[•・．]", "·", value)
    han = r"[\u3400-\u9fff\U00020000-\U0002ffff]"
    if len(value) > 30 or not re.fullmatch(rf"{han}+(·{han}+)*", value) or len(value) < 2:
        raise ValueError("must be 2–30 Chinese characters (· between parts of a name)")
    return value
