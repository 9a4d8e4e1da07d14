"""Rotating the personal-data key, on both backends, while the services run: members
registered under the first key, a second key added, ``servicemonth keys rotate`` while
members keep registering, changing their phone and being read; then the first key retired.
Nothing becomes unreadable, duplicates and sign-in by phone keep working."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from services.cli import cli
from services.demo_data import roster_xlsx
from services.keys import sealed_columns
from services.registration import tasks as registration_tasks
from shared import runtime as runtime_mod
from shared.config import SERVICES, load, settings
from shared.pii import Sealer, mask_phone
from shared.rekey import SealedColumn, reseal, unopened
from shared.runtime import Runtime
from tests import support
from tests.conftest import open_backend
from tests.integration.notify_support import dispatched, drain, file_sender, sms_lines

FIRST_KEY = "11" * 32  # what the backends seal under (tests/conftest.py)
SECOND_KEY = "22" * 32
BEFORE = 12  # members registered under the first key


@pytest.fixture
def admin(backend: Any) -> str:
    support.load_sample_directory(backend)
    return support.issue_token(backend, "admin", "city")


def restart_with(backend: Any, monkeypatch: pytest.MonkeyPatch, **changes: str | None) -> None:
    """What the operator does after changing the key settings: every process starts again
    with them (here, the runtimes the routes, consumers and the CLI use)."""
    for key, value in changes.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
            backend.env.pop(key, None)
        else:
            monkeypatch.setenv(key, value)
            backend.env[key] = value
    settings.cache_clear()
    backend.settings = load(backend.env)
    for service in SERVICES:
        rt = backend.rt(service)
        backend.runtimes[service] = Runtime(service, backend.settings, rt.db, rt.clock)
        runtime_mod.override(service, backend.runtimes[service])


def keys(*args: str) -> str:
    result = CliRunner().invoke(cli, ["keys", *args])
    assert result.exit_code == 0, result.output
    return result.output


def register(admin: str, seed: int, **overrides: Any) -> dict[str, Any]:
    body = support.member_body(seed, **overrides)
    with support.client(admin) as http:
        created = http.post("/api/v1/members", json=body)
    assert created.status_code == 201, created.text
    return {**body, "id": created.json()["id"]}


def deliver_everything(backend: Any, expected_contacts: int) -> None:
    """Registration's outbox to pairing, notify and reporting, until notify holds them all."""
    support.relay_all(backend)
    consumers = [support.consumer(backend, s) for s in support.CONSUMERS]
    with support.client(support.issue_token(backend, "admin", "city")) as http:
        assert support.run_consumers(
            consumers,
            until=lambda: support.stats(http, "notify")["contacts"] >= expected_contacts,
            settle=0.5,
        )


def unmasked(admin: str, member_id: str) -> dict[str, Any]:
    with support.client(admin) as http:
        read = http.get(f"/api/v1/members/{member_id}", params={"unmasked": "true"})
    assert read.status_code == 200, read.text
    shown: dict[str, Any] = read.json()
    return shown


def sign_in(backend: Any, phone: str) -> dict[str, Any]:
    """Ask for a code, read it where the person would (the file SMS channel: notify opened
    the sealed code and contact), and sign in with it."""
    with support.client() as http:
        assert http.post("/api/v1/auth/codes", json={"phone": phone}).status_code == 202
        with dispatched() as queue:
            support.relay_all(backend)
            assert support.run_consumers(
                [support.consumer(backend, "notify")], until=lambda: bool(queue)
            )
            drain(backend, file_sender(backend), queue)
        sent = [json.loads(line) for line in sms_lines(backend)]
        mine = [s for s in sent if s["kind"] == "sign_in_code" and s["to"] == mask_phone(phone)]
        assert mine
        session = http.post(
            "/api/v1/auth/sessions", json={"phone": phone, "code": mine[-1]["params"]["code"]}
        )
    assert session.status_code == 201, session.text
    body: dict[str, Any] = session.json()
    return body


def the_rest_of_what_is_sealed(admin: str) -> dict[str, str]:
    """Besides members: a staff account (and notify's copy), a report subscription, a roster
    imported with a rejected row, and a roster uploaded but not imported yet (its file
    sealed). Returns the rosters' ids."""
    staff = {"name": "李红", "phone": "13900001111", "role": "operator", "scope": "district:410303"}
    with support.client(admin) as http:
        assert http.post("/api/v1/staff", json=staff).status_code == 201
        subscribed = http.post(
            "/api/v1/subscriptions",
            json={"scope": "city", "name": "张三", "email": "zhang.san@example.com"},
        )
        assert subscribed.status_code == 201, subscribed.text
        rosters: dict[str, str] = {}
        for which in ("imported", "waiting"):
            sent = http.post(
                "/api/v1/rosters",
                data={"unit_code": "U410303001"},
                files={"file": ("roster.xlsx", roster_xlsx(10, seed=len(rosters) + 3))},
            )
            assert sent.status_code == 202, sent.text
            rosters[which] = sent.json()["id"]
    registration_tasks.import_roster(rosters["imported"])
    return rosters


def roster_errors_open(admin: str, roster_id: str) -> bool:
    with support.client(admin) as http:
        got = http.get(f"/api/v1/rosters/{roster_id}/errors.xlsx")
    return bool(got.status_code == 200 and got.content[:2] == b"PK")


def nothing_unopened(backend: Any) -> dict[str, int]:
    found = {}
    for service, specs in sealed_columns().items():
        rt = backend.rt(service)
        for spec in specs:
            count = unopened(rt.db, spec, rt.sealer)
            if count:
                found[f"{service} {spec.table}.{spec.column}"] = count
    return found


def test_the_key_is_rotated_while_members_register_and_the_old_key_then_retired(
    backend: Any, admin: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    members = [register(admin, seed) for seed in range(BEFORE)]
    rosters = the_rest_of_what_is_sealed(admin)
    quiet = members[-3:]  # they keep their phones: one signs in now, the others later
    sign_in(backend, quiet[0]["phone"])
    deliver_everything(backend, BEFORE)
    # one more whose event waits in the outbox, its contact sealed under the old key
    members.append(register(admin, BEFORE))
    before = keys("status")
    assert "current key version: 1" in before
    for table in (
        "registration members",
        "registration staff_accounts",
        "registration rosters",
        "registration roster_errors",
        "registration outbox",
        "notify contacts",
        "notify staff_contacts",
        "notify notifications",
        "reporting subscriptions",
    ):
        line = next(x for x in before.splitlines() if x.startswith(table + ":"))
        assert "v1: " in line and "under older keys: 0" in line, line

    # first every process learns the second key (it opens with it, seals with the first),
    # then every process seals with it
    keys_file = tmp_path / "pii.keys"
    keys_file.write_text(f"2 {SECOND_KEY} next\n")
    restart_with(backend, monkeypatch, SERVICEMONTH_PII_KEYS_FILE=str(keys_file))
    assert "current key version: 1 (configured: 1, 2)" in keys("status")
    keys_file.write_text(f"# the second key\n2 {SECOND_KEY}\n")
    restart_with(backend, monkeypatch)

    # Meanwhile the services run: new members register, old ones change their phone and
    # are read in clear (each a transaction racing the rotation's compare-and-set).
    stop = threading.Event()
    during: list[dict[str, Any]] = []
    new_phones: dict[str, str] = {}
    problems: list[str] = []

    def busy() -> None:
        seed = 1000
        while not stop.is_set() and seed < 1060:
            try:
                during.append(register(admin, seed))
                old = members[seed % (BEFORE - len(quiet))]
                phone = f"1391234{seed:04d}"
                with support.client(admin) as http:
                    patched = http.patch(f"/api/v1/members/{old['id']}", json={"phone": phone})
                if patched.status_code != 200:
                    problems.append(f"patch: {patched.status_code}")
                new_phones[old["id"]] = phone
                if unmasked(admin, old["id"])["id_number"] != old["id_number"]:
                    problems.append("an ID number read back wrong")
            except AssertionError as exc:
                problems.append(str(exc).splitlines()[0])
            seed += 1

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        rotated = keys("rotate", "--batch", "3")
    finally:
        stop.set()
        worker.join(60)
    assert problems == []
    assert during, "nothing registered during the rotation"
    assert "re-sealed so far" in rotated
    assert rotated.splitlines()[-1].endswith(" 0 under older keys"), rotated
    registered = next(x for x in rotated.splitlines() if x.startswith("registration members:"))
    # every ID number; the phones too, but for those changed (so sealed anew) meanwhile
    assert int(registered.split(":")[1].split()[0]) >= BEFORE
    everyone = members + during
    printed = rotated + before
    assert [m["id_number"] for m in everyone if m["id_number"] in printed] == []
    assert [m["phone"] for m in everyone if m["phone"] in printed] == []

    deliver_everything(backend, len(everyone))
    after = keys("status")
    assert "current key version: 2" in after
    assert "v1:" not in after and after.count("under older keys: 0") == after.count("keys:")
    notify_only = keys("status", "notify").splitlines()[1:]
    assert notify_only and all(line.startswith("notify ") for line in notify_only)
    assert nothing_unopened(backend) == {}

    assert not set(new_phones) & {m["id"] for m in quiet}
    registration_tasks.import_roster(rosters["waiting"])  # its file sealed before, opened now
    with support.client(admin) as http:
        waited = http.get(f"/api/v1/rosters/{rosters['waiting']}").json()
    assert (waited["status"], waited["rejected"] > 0) == ("done", True), waited

    def still_works(signing_in: dict[str, Any]) -> None:
        for member in everyone:
            shown = unmasked(admin, member["id"])
            assert shown["id_number"] == member["id_number"]
            assert shown["phone"] == new_phones.get(member["id"], member["phone"])
        # the same ID number again (another phone) is still a duplicate
        twin = support.member_body(500, id_number=members[0]["id_number"])
        with support.client(admin) as http:
            assert http.post("/api/v1/members", json=twin).status_code == 409
        assert roster_errors_open(admin, rosters["imported"])
        assert roster_errors_open(admin, rosters["waiting"])
        # a member registered under the first key signs in by phone: found by its hash
        # (one member each time: a number gets one code a minute)
        session = sign_in(backend, signing_in["phone"])
        assert session["role"] == "member" and session["scope"] == f"member:{signing_in['id']}"

    still_works(quiet[1])

    lookup = keys("lookup-key").strip()
    assert len(lookup) == 64 and lookup != FIRST_KEY
    restart_with(
        backend,
        monkeypatch,
        SERVICEMONTH_PII_KEY=None,
        SERVICEMONTH_PII_LOOKUP_KEY=lookup,
    )
    assert 1 not in backend.settings.pii_keys().keys
    assert nothing_unopened(backend) == {}
    still_works(quiet[2])


@pytest.mark.production
def test_a_phone_changed_while_its_batch_is_resealed_keeps_the_new_phone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL lets a member change their phone between the rotation's read of a batch
    and its write (SQLite's write lock makes them wait their turn)."""
    with open_backend("production", tmp_path / "var", monkeypatch, request) as backend:
        support.load_sample_directory(backend)
        admin = support.issue_token(backend, "admin", "city")
        member = register(admin, 7)
        keys_file = tmp_path / "pii.keys"
        keys_file.write_text(f"2 {SECOND_KEY}\n")
        restart_with(backend, monkeypatch, SERVICEMONTH_PII_KEYS_FILE=str(keys_file))
        rt = backend.rt("registration")
        configured = backend.settings.pii_keys()

        class MeanwhileTheMemberMoves(Sealer):
            def reseal(self, token: str, context: str) -> str | None:
                with support.client(admin) as http:
                    moved = http.patch(
                        f"/api/v1/members/{member['id']}", json={"phone": "13912340077"}
                    )
                assert moved.status_code == 200, moved.text
                return super().reseal(token, context)

        racing = MeanwhileTheMemberMoves.from_keys(configured.keys, configured.lookup)
        phones = SealedColumn("members", "phone_sealed", context="phone")

        outcome = reseal(rt.db, phones, racing)

        assert (outcome.resealed, outcome.changed_meanwhile) == (0, 1)
        assert unmasked(admin, member["id"])["phone"] == "13912340077"
