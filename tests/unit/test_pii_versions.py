"""The personal-data key has versions: new values are sealed under the newest key, every
configured key opens what it sealed, values sealed before versions existed open as version
1, and the look-up hash does not change with the version."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from shared.pii import Sealer, UnknownKeyVersion, key_version, lookup_key

FIRST, SECOND, THIRD = bytes(range(32)), b"2" * 32, b"3" * 32
ID_NUMBER = "410302195001010015"


def test_a_value_sealed_before_key_versions_opens_as_version_one() -> None:
    legacy = Sealer(FIRST).seal(ID_NUMBER, "id_number")  # what every existing row holds

    assert key_version(legacy) == 1
    assert Sealer.from_keys({1: FIRST, 2: SECOND}).open(legacy, "id_number") == ID_NUMBER


def test_new_values_are_sealed_under_the_newest_key_and_say_so() -> None:
    sealer = Sealer.from_keys({1: FIRST, 3: THIRD, 2: SECOND})

    token = sealer.seal(ID_NUMBER, "id_number")

    assert token.startswith("v3.") and key_version(token) == 3
    assert sealer.open(token, "id_number") == ID_NUMBER
    with pytest.raises(InvalidTag):  # the header cannot be moved to another key
        sealer.open("v2." + token[3:], "id_number")


def test_resealing_moves_a_value_to_the_newest_key_once() -> None:
    sealer = Sealer.from_keys({1: FIRST, 2: SECOND})
    legacy = Sealer(FIRST).seal(ID_NUMBER, "phone")

    moved = sealer.reseal(legacy, "phone")

    assert moved is not None and key_version(moved) == 2
    assert Sealer.from_keys({2: SECOND}, lookup_key(FIRST)).open(moved, "phone") == ID_NUMBER
    assert sealer.reseal(moved, "phone") is None


def test_a_value_under_a_key_no_longer_configured_says_which_version() -> None:
    legacy = Sealer(FIRST).seal(ID_NUMBER, "phone")

    with pytest.raises(UnknownKeyVersion, match="version 1"):
        Sealer.from_keys({2: SECOND}, lookup_key(FIRST)).open(legacy, "phone")


def test_the_look_up_hash_stays_the_same_across_versions_and_after_retiring_the_first() -> None:
    before = Sealer(FIRST).digest(ID_NUMBER)

    assert Sealer.from_keys({1: FIRST, 2: SECOND}).digest(ID_NUMBER) == before
    assert Sealer.from_keys({2: SECOND}, lookup_key(FIRST)).digest(ID_NUMBER) == before


def test_without_the_first_key_the_look_up_key_must_be_given() -> None:
    with pytest.raises(ValueError, match="look-up key"):
        Sealer.from_keys({2: SECOND})


def test_a_key_announced_as_next_opens_before_anything_is_sealed_with_it() -> None:
    waiting = Sealer.from_keys({1: FIRST, 2: SECOND}, current=1)  # not restarted yet
    sealing = Sealer.from_keys({1: FIRST, 2: SECOND})  # restarted with the key in use

    token = sealing.seal(ID_NUMBER, "phone")

    assert waiting.open(token, "phone") == ID_NUMBER
    assert key_version(waiting.seal(ID_NUMBER, "phone")) == 1
