"""Events are checked at the door: a malformed message is refused with a reason naming the field."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.events import InvalidEvent, MemberRegistered, envelope_for, parse

MEMBER_ID = uuid.UUID("6f1c1a58-0c43-4b4e-9a53-1d7e0d0b2b01")
REGISTRATION_ID = uuid.UUID("0b7e2a57-64c4-4f0c-8ad8-1f0f5ac6b4a2")
MORNING_IN_LUOYANG = datetime(2016, 6, 26, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def member_registered() -> MemberRegistered:
    return MemberRegistered.model_validate(
        {
            "member_id": str(MEMBER_ID),
            "unit_code": "U410303001",
            "unit_district": "410303",
            "communities": [
                {
                    "registration_id": str(REGISTRATION_ID),
                    "community_code": "410303001001",
                    "role": "residence",
                    "district": "410303",
                }
            ],
            "skills": ["政策宣讲"],
            "is_leader_cadre": True,
        }
    )


def wire_body(**envelope_changes: Any) -> dict[str, Any]:
    """A valid ``member.registered`` message as a dict, with top-level keys replaced."""
    envelope = envelope_for(
        member_registered(),
        district="410303",
        campaign="servicemonth-2016",
        producer="registration",
        occurred_at=MORNING_IN_LUOYANG,
    )
    body: dict[str, Any] = json.loads(envelope.model_dump_json())
    body.update(envelope_changes)
    return body


def with_payload(**payload_changes: Any) -> dict[str, Any]:
    body = wire_body()
    body["payload"].update(payload_changes)
    return body


def reason_for(body: Any) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse(body)
    return caught.value.reason


def test_member_registered_survives_the_round_trip_through_json() -> None:
    event = member_registered()
    envelope = envelope_for(
        event,
        district="410303",
        campaign="servicemonth-2016",
        producer="registration",
        occurred_at=MORNING_IN_LUOYANG,
    )

    parsed_envelope, parsed_event = parse(envelope.model_dump_json().encode())

    assert parsed_envelope == envelope
    assert parsed_event == event
    assert isinstance(parsed_event, MemberRegistered)
    assert parsed_envelope.routing_key == "410303.member.registered"


def test_occurred_at_is_carried_in_utc() -> None:
    envelope, _ = parse(wire_body())

    assert envelope.occurred_at == datetime(2016, 6, 26, 1, 30, tzinfo=UTC)
    assert envelope.occurred_at.utcoffset() is not None
    assert envelope.occurred_at.tzinfo == UTC


def test_each_envelope_gets_a_fresh_id() -> None:
    first, second = (
        envelope_for(
            member_registered(),
            district="410303",
            campaign="servicemonth-2016",
            producer="registration",
            occurred_at=MORNING_IN_LUOYANG,
        )
        for _ in range(2)
    )

    assert first.id != second.id


def test_unknown_event_type_is_refused_naming_the_type() -> None:
    reason = reason_for(wire_body(type="member.teleported"))

    assert "unknown event type 'member.teleported'" in reason


def test_unknown_version_of_a_known_type_is_refused() -> None:
    reason = reason_for(wire_body(version=2))

    assert "'member.registered' version 2" in reason


def test_bad_community_code_is_refused_naming_the_field() -> None:
    body = wire_body()
    body["payload"]["communities"][0]["community_code"] = "41030300100"

    reason = reason_for(body)

    assert "payload.communities.0.community_code" in reason


def test_missing_member_id_is_refused_naming_the_field() -> None:
    body = wire_body()
    del body["payload"]["member_id"]

    assert "payload.member_id" in reason_for(body)


def test_unexpected_payload_field_is_refused_naming_the_field() -> None:
    reason = reason_for(with_payload(id_number="11010519491231002X"))

    assert "payload.id_number" in reason


def test_member_with_no_community_is_refused() -> None:
    assert "payload.communities" in reason_for(with_payload(communities=[]))


def test_naive_occurred_at_is_refused() -> None:
    reason = reason_for(wire_body(occurred_at="2016-06-26T09:30:00"))

    assert "occurred_at" in reason
    assert "timezone" in reason


def test_envelope_with_a_bad_district_is_refused_naming_the_field() -> None:
    reason = reason_for(wire_body(district="洛阳"))

    assert reason.startswith("bad envelope")
    assert "district" in reason


@pytest.mark.parametrize("body", [b"not json", "{", b"\xff\xfe\x00"])
def test_a_body_that_is_not_json_is_refused(body: bytes | str) -> None:
    assert reason_for(body).startswith("not JSON")


@pytest.mark.parametrize("body", [b"[1, 2]", '"member.registered"', b"null"])
def test_json_that_is_not_an_object_is_refused(body: bytes | str) -> None:
    assert reason_for(body) == "not a JSON object"
