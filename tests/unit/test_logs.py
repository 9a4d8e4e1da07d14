"""The last step of every log line masks ID numbers and mobiles, and only those."""

from __future__ import annotations

import pytest

from shared.logs import mask_personal


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("id 410303198001011234 given", "id 410303********1234 given"),
        ("id=41030319800101123x", "id=410303********123x"),
        ("phone 13812348000.", "phone 138****8000."),
        ("tel:+8613812348000", "tel:+86138****8000"),
        ("('13812348000', '410302195001010015')", "('138****8000', '410302********0015')"),
        ("两个：13912345678和19987654321", "两个：139****5678和199****4321"),
        ("tel 138 1234 8000, +86 138-1234-8000", "tel 138****8000, +86 138****8000"),
        ("旧证 410303800101001", "旧证 410303*****1001"),  # the old 15 digits
    ],
)  # fmt: skip
def test_id_numbers_and_mobiles_are_masked_wherever_they_stand(line: str, masked: str) -> None:
    assert mask_personal(line) == masked


@pytest.mark.parametrize(
    "line",
    [
        "event 123e4567-e89b-12d3-a456-426614174000 applied",
        "took 12345678901234567890 ns",  # longer than either
        "at 2016-06-26T08:00:00Z, 12 rows",
        "district 410303, community 410303001001",  # 6 and 12 digits
        "hash a13812348000b",  # inside a longer token
        "1234567890123456789X",  # 20 characters
    ],
)
def test_what_is_neither_is_left_as_it_is(line: str) -> None:
    assert mask_personal(line) == line
