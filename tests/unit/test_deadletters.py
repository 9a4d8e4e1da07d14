"""What an operator sees of a dead letter: sealed values replaced, personal data masked."""

from __future__ import annotations

import json
import uuid

from shared.deadletters import SEALED, describe
from shared.pii import Sealer

SEALER = Sealer(bytes(range(32)))
ROTATED = Sealer.from_keys({1: bytes(range(32)), 2: bytes(range(1, 33))})


def envelope(event_type: str, payload: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "id": str(uuid.UUID(int=7)),
            "type": event_type,
            "version": 1,
            "occurred_at": "2016-07-01T08:00:00+00:00",
            "district": "410303",
            "campaign": "c",
            "producer": "registration",
            "payload": payload,
        }
    ).encode()


def test_a_sign_in_code_and_its_sealed_number_are_not_shown() -> None:
    body = envelope(
        "auth.code_requested",
        {
            "request_id": str(uuid.UUID(int=8)),
            "contact": {"sealed": SEALER.seal("13812348000", "c"), "phone_masked": "138****8000"},
            "code": SEALER.seal("123456", "sign-in-code"),
            "expires_at": "2016-07-01T08:05:00+00:00",
        },
    )
    letter = describe(body, {"x-dead-reason": "KeyError: x", "x-dead-at": "2016-07-01T08:00:01"})
    assert letter.id == str(uuid.UUID(int=7))
    assert letter.event_type == "auth.code_requested"
    assert letter.body["payload"]["contact"] == {"sealed": SEALED, "phone_masked": "138****8000"}
    assert letter.body["payload"]["code"] == SEALED
    assert letter.body["payload"]["request_id"] == str(uuid.UUID(int=8))  # ids are kept
    assert (letter.reason, letter.dead_at) == ("KeyError: x", "2016-07-01T08:00:01")


def test_a_sealed_value_in_any_field_and_personal_data_in_free_text_are_masked() -> None:
    body = envelope(
        "wish.collected",
        {
            "title": "请联系 13812348000，身份证 410302195001010015",
            "note": ROTATED.seal("张三", "x"),  # sealed under key version 2: v2.…
            "reason": {"by": "zhangsan@example.com"},
        },
    )
    shown = json.dumps(describe(body, {}).body, ensure_ascii=False)
    for secret in ("13812348000", "410302195001010015", "zhangsan@example.com", "v2."):
        assert secret not in shown
    payload = describe(body, {}).body["payload"]
    assert payload["title"] == "请联系 138****8000，身份证 410***********0015"
    assert payload["note"] == SEALED


def test_a_body_that_is_no_event_gets_an_id_from_its_bytes_and_the_broker_s_reason() -> None:
    headers = {"x-death": [{"reason": "delivery_limit", "queue": "servicemonth.t.pairing.events"}]}
    first = describe(b"\xff\xfe not json 13812348000", headers)
    assert (
        first.id.startswith("body-")
        and first.id == describe(b"\xff\xfe not json 13812348000", {}).id
    )
    assert first.event_type == "?"
    assert "13812348000" not in first.body
    assert first.reason == "broker: delivery_limit in servicemonth.t.pairing.events"
