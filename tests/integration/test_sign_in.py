"""Signing in with an SMS code, on both backends, through the HTTP contract: the code is read
where the person at the machine reads it (the file SMS channel), sessions are signed tokens
every service checks on its own, and nothing tells a stranger who is registered."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text

from services.registration.models import SignInCode
from shared import tokens
from shared.events import parse
from shared.pii import mask_phone
from tests import support
from tests.integration.notify_support import dispatched, drain, file_sender, sms_lines

MEMBER_PHONE = "13812348000"
WORKER_PHONE = "13912345678"
STRANGER_PHONE = "13712340000"
HOME_COMMUNITY = "410305001001"  # where the member lives (district 410305)


@pytest.fixture
def admin(backend: Any) -> str:
    support.load_sample_directory(backend)
    return support.issue_token(backend, "admin", "city")


def register_member(admin: str, seed: int, phone: str) -> dict[str, Any]:
    body = support.member_body(seed, phone=phone, residence_community_code=HOME_COMMUNITY)
    with support.client(admin) as http:
        created = http.post("/api/v1/members", json=body)
    assert created.status_code == 201, created.text
    member: dict[str, Any] = created.json()
    return member


def sms_code(backend: Any, phone: str) -> str:
    """What the person at the machine does: read the code in var/outbox/sms.jsonl. Here the
    pipeline runs by hand: registration's outbox → notify's consumer → the send task."""
    with dispatched() as queue:
        support.relay_all(backend)
        assert support.run_consumers(
            [support.consumer(backend, "notify")], until=lambda: bool(queue)
        )
        drain(backend, file_sender(backend), queue)
    lines = [json.loads(line) for line in sms_lines(backend)]
    mine = [s for s in lines if s["kind"] == "sign_in_code" and s["to"] == mask_phone(phone)]
    assert mine, lines
    assert phone not in json.dumps(mine[-1])  # the number stays masked
    code: str = mine[-1]["params"]["code"]
    assert len(code) == 6 and code.isdigit()
    return code


def sign_in(backend: Any, phone: str, **extra: Any) -> httpx.Response:
    with support.client() as http:
        assert http.post("/api/v1/auth/codes", json={"phone": phone}).status_code == 202
        code = sms_code(backend, phone)
        response: httpx.Response = http.post(
            "/api/v1/auth/sessions", json={"phone": phone, "code": code, **extra}
        )
    return response


# --- 1. members and community workers sign in ------------------------------------------------


def test_a_member_signs_in_with_the_sms_code_and_reads_only_their_own_record(
    backend: Any, admin: str
) -> None:
    me = register_member(admin, 1, MEMBER_PHONE)
    other = register_member(admin, 2, "13812348001")

    session = sign_in(backend, MEMBER_PHONE)

    assert session.status_code == 201, session.text
    body = session.json()
    assert body["role"] == "member" and body["scope"] == f"member:{me['id']}"
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC) + timedelta(hours=11)
    with support.client(body["token"]) as http:
        own = http.get(f"/api/v1/members/{me['id']}")
        assert own.status_code == 200 and own.json()["phone"] == mask_phone(MEMBER_PHONE)
        assert http.get(f"/api/v1/members/{other['id']}").status_code == 404


def test_five_wrong_codes_spend_the_code(backend: Any, admin: str) -> None:
    register_member(admin, 1, MEMBER_PHONE)
    with support.client() as http:
        http.post("/api/v1/auth/codes", json={"phone": MEMBER_PHONE})
        code = sms_code(backend, MEMBER_PHONE)
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        for _ in range(5):
            answer = http.post("/api/v1/auth/sessions", json={"phone": MEMBER_PHONE, "code": wrong})
            assert answer.status_code == 401
        right = http.post("/api/v1/auth/sessions", json={"phone": MEMBER_PHONE, "code": code})
    assert right.status_code == 401  # the right code comes too late: it is spent


def test_an_expired_code_is_refused_and_a_code_is_used_once(backend: Any, admin: str) -> None:
    clock = support.on_simulated_clock(backend, datetime(2016, 6, 25, 9, tzinfo=UTC))
    register_member(admin, 1, MEMBER_PHONE)
    with support.client() as http:
        http.post("/api/v1/auth/codes", json={"phone": MEMBER_PHONE})
        code = sms_code(backend, MEMBER_PHONE)
        clock.advance(timedelta(minutes=5, seconds=1))
        late = http.post("/api/v1/auth/sessions", json={"phone": MEMBER_PHONE, "code": code})
        assert late.status_code == 401

        clock.advance(timedelta(minutes=1))
        http.post("/api/v1/auth/codes", json={"phone": MEMBER_PHONE})
        fresh = sms_code(backend, MEMBER_PHONE)
        first = http.post("/api/v1/auth/sessions", json={"phone": MEMBER_PHONE, "code": fresh})
        again = http.post("/api/v1/auth/sessions", json={"phone": MEMBER_PHONE, "code": fresh})
    assert (first.status_code, again.status_code) == (201, 401)


def test_a_community_worker_confirms_a_report_in_in_their_community_and_nowhere_else(
    backend: Any, admin: str
) -> None:
    member = register_member(admin, 1, MEMBER_PHONE)
    with support.client(admin) as http:
        for community in (HOME_COMMUNITY, "410303001001"):
            created = http.post(
                "/api/v1/staff",
                json={
                    "name": "李社工",
                    "phone": WORKER_PHONE,
                    "role": "community",
                    "scope": f"community:{community}",
                },
            )
            assert created.status_code == 201, created.text
    ours = next(r for r in member["registrations"] if r["community_code"] == HOME_COMMUNITY)
    theirs = next(r for r in member["registrations"] if r["community_code"] != HOME_COMMUNITY)

    with support.client() as http:
        http.post("/api/v1/auth/codes", json={"phone": WORKER_PHONE})
        code = sms_code(backend, WORKER_PHONE)
        unsure = http.post("/api/v1/auth/sessions", json={"phone": WORKER_PHONE, "code": code})
        assert unsure.status_code == 422  # two accounts: the worker chooses (the code holds)
        assert unsure.json()["errors"][0]["field"] == "role"
        session = http.post(
            "/api/v1/auth/sessions",
            json={
                "phone": WORKER_PHONE,
                "code": code,
                "role": "community",
                "scope": f"community:{HOME_COMMUNITY}",
            },
        )

    assert session.status_code == 201, session.text
    with support.client(session.json()["token"]) as http:
        confirmed = http.post(f"/api/v1/registrations/{ours['id']}/confirm")
        assert confirmed.status_code == 200, confirmed.text
        assert http.post(f"/api/v1/registrations/{theirs['id']}/confirm").status_code == 404


# --- 2. a stranger learns nothing ---------------------------------------------------------------


def test_code_requests_for_known_and_unknown_numbers_cannot_be_told_apart(
    backend: Any, admin: str
) -> None:
    register_member(admin, 1, MEMBER_PHONE)
    with support.client() as http:
        known = http.post("/api/v1/auth/codes", json={"phone": MEMBER_PHONE})
        unknown = http.post("/api/v1/auth/codes", json={"phone": STRANGER_PHONE})
    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content

    def shown(r: httpx.Response) -> dict[str, str]:
        return {k: v for k, v in r.headers.items() if k not in ("date", "x-request-id")}

    assert shown(known) == shown(unknown)


def test_anonymous_registration_is_refused(backend: Any, admin: str) -> None:
    with support.client() as http:
        answer = http.post("/api/v1/members", json=support.member_body(1))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_new_number_registers_itself_and_only_itself(backend: Any, admin: str) -> None:
    session = sign_in(backend, STRANGER_PHONE)
    assert session.status_code == 201 and session.json()["role"] == "registrant"
    token = session.json()["token"]
    with support.client(token) as http:
        someone_else = http.post(
            "/api/v1/members", json=support.member_body(3, phone="13812348009")
        )
        assert someone_else.status_code == 422
        assert someone_else.json()["errors"][0]["field"] == "phone"
        assert http.get("/api/v1/wishes").status_code == 403  # a registrant may do nothing else

        mine = http.post("/api/v1/members", json=support.member_body(3, phone=STRANGER_PHONE))
    assert mine.status_code == 201, mine.text
    member_session = mine.json()["session"]
    assert member_session["role"] == "member"
    with support.client(member_session["token"]) as http:
        assert http.get(f"/api/v1/members/{mine.json()['id']}").status_code == 200


def test_a_known_id_number_gets_the_neutral_refusal_and_its_holder_is_told(
    backend: Any, admin: str
) -> None:
    holder_body = support.member_body(1, phone=MEMBER_PHONE)
    with support.client(admin) as http:
        holder = http.post("/api/v1/members", json=holder_body).json()
    support.relay_all(backend)  # the holder's registration: notify knows their contact
    session = sign_in(backend, STRANGER_PHONE)
    with support.client(session.json()["token"]) as http:
        tried = http.post(
            "/api/v1/members",
            json=support.member_body(3, phone=STRANGER_PHONE, id_number=holder_body["id_number"]),
        )
    assert tried.status_code == 409
    detail = tried.json()["detail"]
    assert "registration cannot go on" in detail
    assert holder["id"] not in tried.text and holder_body["name"] not in tried.text

    notify = support.consumer(backend, "notify")
    with dispatched() as queue:
        support.relay_all(backend)
        assert support.run_consumers([notify], until=lambda: bool(queue))
        drain(backend, file_sender(backend), queue)
    told = [json.loads(s) for s in sms_lines(backend)]
    assert [s["to"] for s in told if s["kind"] == "id_number_tried"] == [mask_phone(MEMBER_PHONE)]


# --- 3. limits across processes, sign-out everywhere -------------------------------------


def _serve(backend: Any, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, **backend.env, "SERVICEMONTH_HTTP_PORT": str(port)}
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "registration", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_code_limits_hold_across_two_server_processes(backend: Any, admin: str) -> None:
    ports = [support.free_port(), support.free_port()]
    servers = [_serve(backend, p) for p in ports]
    try:
        for port in ports:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
        first = httpx.post(
            f"http://127.0.0.1:{ports[0]}/api/v1/auth/codes", json={"phone": MEMBER_PHONE}
        )
        second = httpx.post(
            f"http://127.0.0.1:{ports[1]}/api/v1/auth/codes", json={"phone": MEMBER_PHONE}
        )
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
            server.wait(10)
    assert first.status_code == 202, first.text
    assert second.status_code == 429, second.text
    assert 1 <= int(second.headers["retry-after"]) <= 60


def test_a_sign_out_ends_the_session_in_all_four_services(backend: Any, admin: str) -> None:
    me = register_member(admin, 1, MEMBER_PHONE)
    token = sign_in(backend, MEMBER_PHONE).json()["token"]
    reads = {
        "registration": f"/api/v1/members/{me['id']}",
        "pairing": f"/api/v1/members/{me['id']}/progress",
        "notify": f"/api/v1/members/{me['id']}/preferences",
        "reporting": "/api/v1/summary",
    }
    with support.client(token) as http:
        assert all(http.get(path).status_code != 401 for path in reads.values())
        assert http.delete("/api/v1/auth/sessions").status_code == 204
        assert http.get(reads["registration"]).status_code == 401  # at once: its own table

        support.relay_all(backend)
        consumers = [support.consumer(backend, s) for s in ("pairing", "notify", "reporting")]

        def revoked_everywhere() -> bool:
            return all(http.get(path).status_code == 401 for path in reads.values())

        assert support.run_consumers(consumers, until=revoked_everywhere)


# --- 4. tokens that are not ours ---------------------------------------------------------------


def test_a_foreign_expired_or_altered_token_is_refused_by_every_service(
    backend: Any, admin: str
) -> None:
    claims = {
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "sub": "test:admin",
        "role": "admin",
        "scope": "city",
        "jti": "00000000-0000-0000-0000-000000000001",
        "iat": datetime.now(UTC),
        "exp": datetime.now(UTC) + timedelta(hours=1),
    }
    foreign_key = Ed25519PrivateKey.generate()
    ours = serialization.load_pem_private_key(
        (backend.settings.home / "keys" / "token-ed25519.pem").read_bytes(), None
    )
    member = support.issue_token(backend, "member", "member:00000000-0000-0000-0000-000000000002")
    head, payload, signature = member.split(".")
    forged_payload = jwt.utils.base64url_encode(  # a member's token made an admin's
        json.dumps(
            {**json.loads(jwt.utils.base64url_decode(payload)), "role": "admin", "scope": "city"}
        ).encode()
    ).decode()
    bad = {
        "foreign": jwt.encode(claims, foreign_key, algorithm="EdDSA"),
        "expired": jwt.encode(
            {**claims, "iat": datetime.now(UTC) - timedelta(hours=13), "exp": datetime.now(UTC)},
            ours,
            algorithm="EdDSA",
        ),
        "altered": f"{head}.{forged_payload}.{signature}",
        "unsigned": jwt.encode(claims, None, algorithm="none"),
    }
    paths = ["/api/v1/ops/registration", "/api/v1/ops/pairing", "/api/v1/ops/notify"]
    paths.append("/api/v1/ops/reporting")
    with support.client(admin) as http:
        assert all(http.get(p).status_code == 200 for p in paths)
    for name, token in bad.items():
        with support.client(token) as http:
            for path in paths:
                assert http.get(path).status_code == 401, (name, path)


def test_no_code_or_number_is_kept_in_clear(backend: Any, admin: str) -> None:
    register_member(admin, 1, MEMBER_PHONE)
    session = sign_in(backend, MEMBER_PHONE)
    assert session.status_code == 201
    code_line = [json.loads(s) for s in sms_lines(backend) if "sign_in_code" in s][-1]
    code = code_line["params"]["code"]
    for service in ("registration", "notify"):
        rt = backend.rt(service)
        with rt.db.session() as db:
            for table in rt.db.metadata.sorted_tables:
                dump = json.dumps([list(r) for r in db.execute(select(table))], default=str)
                assert MEMBER_PHONE not in dump, (service, table.name)
                assert not re.search(rf"(?<!\d){code}(?!\d)", dump), (service, table.name)
    with backend.rt("registration").db.session() as db:
        bodies = db.scalars(text("SELECT body FROM outbox")).all()
        assert all(parse(b)[0] for b in bodies)
        assert not any(code in b or MEMBER_PHONE in b for b in bodies)
        assert db.scalar(select(SignInCode.phone_hmac)) is None  # spent on sign-in


# --- 5. on SQLite, reads never wait for a writer --------------------------------------------


def test_token_checks_and_reads_are_answered_while_a_writer_holds_the_database(
    backend: Any, admin: str
) -> None:
    if backend.production:
        pytest.skip("PostgreSQL readers never wait for writers")
    register_member(admin, 1, MEMBER_PHONE)
    paths = [
        f"/api/v1/registrations?community_code={HOME_COMMUNITY}",
        "/api/v1/ops/registration",
        "/api/v1/staff",
    ]
    writer = backend.rt("registration").db.engine.raw_connection()
    try:
        writer.execute("BEGIN IMMEDIATE")  # a long import's transaction, held open
        with support.client(admin) as http:
            answers = [http.get(path).status_code for path in paths]
        still_locked = writer.in_transaction
    finally:
        writer.rollback()
        writer.close()
    assert answers == [200, 200, 200] and still_locked
