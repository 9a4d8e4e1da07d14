"""A staff contact's body (POST /api/v1/contacts): each bad field is named, blanks are none."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.notify.contacts import StaffIn

GOOD = {"role": "community", "scope": "community:410303001001", "name": "王敏"}


def fields_in_error(**body: Any) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        StaffIn(**{**GOOD, **body})
    return {str(e["loc"][0]) for e in caught.value.errors()}


def test_a_blank_email_beside_a_phone_is_no_email() -> None:
    staff = StaffIn(**GOOD, phone="13800138000", email=" ")
    assert (staff.phone, staff.email) == ("13800138000", None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "12345", "email": None}, "phone"),
        ({"phone": None, "email": "not-an-address"}, "email"),
        ({"phone": "", "email": ""}, "email"),  # neither: said on the e-mail
        ({"role": "unit", "phone": "13800138000"}, "scope"),  # a unit takes unit:CODE
        ({"role": "member", "phone": "13800138000"}, "role"),
        ({"name": " ", "phone": "13800138000"}, "name"),
    ],
)
def test_each_bad_field_is_named(body: dict[str, Any], field: str) -> None:
    assert fields_in_error(**body) == {field}
