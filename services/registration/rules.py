"""Validation rules for what members type in (GB 11643-1999 ID numbers, mobiles, names).

Each function returns the normalised value or raises ``ValueError`` with a message a
member can act on.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import cache

from email_validator import EmailNotValidError, validate_email
from stdnum import numdb

from shared.pii import mobile as mobile  # the same rule for every service
from shared.pii import redact
from shared.vocabulary import map_skills

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
    if not region_ever_valid(value[:6]):
        raise ValueError(f"region code {value[:6]} was never a county-level code")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise ValueError("birth date is not a real date") from None
    if born > today:
        raise ValueError("birth date is in the future")
    if (today.year - born.year) - ((today.month, today.day) < (born.month, born.day)) < 18:
        raise ValueError("member must be at least 18 years old")
    return value


def name(raw: str) -> str:
    """2–30 Han characters, parts of a minority name joined by U+00B7."""
    value = unicodedata.normalize("NFC", raw.strip())
    value = re.sub(r"[•・．]", "·", value)
    han = r"[\u3400-\u9fff\U00020000-\U0002ffff]"
    if len(value) > 30 or not re.fullmatch(rf"{han}+(·{han}+)*", value) or len(value) < 2:
        raise ValueError("must be 2–30 Chinese characters (· between parts of a name)")
    return value


@cache
def region_ever_valid(code: str) -> bool:
    """True when ``code`` was a county-level code at any time.

    Not only in the birth year: Luoyang's 410306 (吉利区, 1983–2021) stays valid on old
    ID numbers. python-stdnum's table lists each code with its years; we ignore the years.
    """
    parts = numdb.get("cn/loc").info(code)
    return len(parts) == 2 and "county" in parts[-1][1]


def email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


#: Own words kept per member (其他专长), and the length of each: enough for what a cell holds.
MAX_OWN_WORDS = 10
MAX_OWN_WORD = 40


def skills(raw: list[str] | str) -> tuple[list[str], list[str]]:
    """Free-text 专长 → (skills from the vocabulary, the member's own words).

    Never refuses: every word that maps (see :func:`shared.vocabulary.map_skills`) gives
    its skills; the rest are kept as the member's own words, with any ID number, mobile or
    e-mail address in them masked, at most :data:`MAX_OWN_WORDS` of :data:`MAX_OWN_WORD`
    characters.
    """
    chosen, other = map_skills(raw)
    own = [redact(w)[:MAX_OWN_WORD] for w in other[:MAX_OWN_WORDS]]
    return chosen, list(dict.fromkeys(own))


def community_code(raw: str) -> str:
    """A 12-digit community code as typed: full-width digits folded, spaces and dashes
    dropped. No check here: the directory says whether the community exists."""
    return re.sub(r"[\s\-\u2010-\u2015\u2212]", "", unicodedata.normalize("NFKC", str(raw)))
