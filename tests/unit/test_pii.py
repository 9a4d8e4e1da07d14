"""Personal data is sealed, found again by digest, and shown masked."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from shared.pii import Sealer, mask_id_number, mask_name, mask_phone

KEY = bytes(range(32))
ID_NUMBER = "410302195001010015"


def test_a_sealed_value_opens_to_itself() -> None:
    sealer = Sealer(KEY)

    assert sealer.open(sealer.seal(ID_NUMBER, "member.id_number"), "member.id_number") == ID_NUMBER


def test_a_sealed_value_does_not_show_the_clear_text() -> None:
    assert ID_NUMBER not in Sealer(KEY).seal(ID_NUMBER, "member.id_number")


def test_opening_with_a_different_context_fails() -> None:
    sealer = Sealer(KEY)
    token = sealer.seal(ID_NUMBER, "member.id_number")

    with pytest.raises(InvalidTag):
        sealer.open(token, "member.mobile")


def test_opening_with_a_different_key_fails() -> None:
    token = Sealer(KEY).seal(ID_NUMBER, "member.id_number")

    with pytest.raises(InvalidTag):
        Sealer(bytes(32)).open(token, "member.id_number")


def test_two_seals_of_the_same_value_differ_but_their_digests_are_equal() -> None:
    sealer = Sealer(KEY)

    assert sealer.seal(ID_NUMBER, "c") != sealer.seal(ID_NUMBER, "c")
    assert sealer.digest(ID_NUMBER) == sealer.digest(ID_NUMBER)


def test_digests_depend_on_the_value_and_on_the_key() -> None:
    assert Sealer(KEY).digest(ID_NUMBER) != Sealer(KEY).digest("11010519491231002X")
    assert Sealer(KEY).digest(ID_NUMBER) != Sealer(bytes(32)).digest(ID_NUMBER)


def test_sealed_json_opens_to_the_same_object() -> None:
    sealer = Sealer(KEY)
    contact = {"mobile": "13812348000", "name": "张三"}

    assert sealer.open_json(sealer.seal_json(contact, "contact"), "contact") == contact


def test_sealed_json_that_is_not_an_object_is_refused_when_opened() -> None:
    sealer = Sealer(KEY)

    with pytest.raises(ValueError, match="not an object"):
        sealer.open_json(sealer.seal("[1, 2]", "contact"), "contact")


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_a_key_that_is_not_32_bytes_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Sealer(bytes(length))


def test_mobile_is_masked_keeping_the_first_three_and_last_four_digits() -> None:
    assert mask_phone("13812348000") == "138****8000"


def test_id_number_is_masked_keeping_three_leading_and_four_trailing_characters() -> None:
    masked = mask_id_number(ID_NUMBER)

    assert masked == "410***********0015"
    assert len(masked) == 18


def test_name_is_masked_keeping_the_surname() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("阿依古丽·买买提") == "阿*******"


def test_an_error_is_kept_as_its_type_and_first_line_only() -> None:
    from shared.pii import error_line

    exc = ValueError("insert failed\n[parameters: ('110101199003077777', '13800138000')]")
    assert error_line(exc) == "ValueError: insert failed"
    assert error_line(RuntimeError()) == "RuntimeError: "
