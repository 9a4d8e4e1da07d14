"""Long uploads land in short transactions. On SQLite a writer holds the database's one
write lock until it commits, so a needs list or a directory file written in one transaction
held every other writer (a member registering, staff confirming) for the whole upload, up
to the 30 s busy timeout and a 500 "database is locked". They now commit every
:data:`shared.db.CHUNK` rows: another caller's write is answered in between, a file that
is refused is still refused whole, and uploading a file again, after a crash part-way or
not, only adds what had not landed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from services.pairing import needs
from services.pairing.models import CommunityReplica, Need
from services.registration import directory
from services.registration.models import Unit
from shared.db import CHUNK, outbox_table
from tests import support

HERE = "410303001001"  # 王城社区, district 410303
ROWS = 20_000  # twenty chunks


@pytest.fixture
def embedded(backend: Any) -> Any:
    """Only SQLite has one write lock per database; PostgreSQL locks rows, so there another
    writer never waited for an upload and the test would prove nothing."""
    if backend.production:
        pytest.skip("PostgreSQL locks rows, not the database: writers never waited there")
    return backend


def _count(backend: Any, service: str, model: Any, *where: Any) -> int:
    """Rows committed so far, read without taking the write lock."""
    with backend.rt(service).read() as uow:
        query = select(func.count()).select_from(model).where(*where)
        return uow.session.scalar(query) or 0


def _needs(backend: Any) -> int:
    return _count(backend, "pairing", Need, Need.community_code == HERE)


def _needs_file(rows: int) -> bytes:
    lines = "".join(f"探访空巢老人{i},助老服务,1,周末\n" for i in range(rows))
    return ("标题,所需专长,所需人数,服务时间\n" + lines).encode()


def _in_background(post: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``post()`` in a thread; its response lands in the returned dict."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(response=post()), daemon=True)
    thread.start()
    return thread, result


def _first_rows(thread: threading.Thread, count: Callable[[], int]) -> int:
    """Wait until the upload's first rows are committed (or it ended); the count then."""
    seen = 0
    while not seen and thread.is_alive():
        thread.join(0.005)
        seen = count()
    return seen or count()


def _pairing_knows_the_directory(backend: Any) -> None:
    support.load_sample_directory(backend)
    support.relay_all(backend)
    assert support.run_consumers(
        [support.consumer(backend, "pairing")],
        until=lambda: _count(backend, "pairing", CommunityReplica) == 6,
    )


def test_a_write_is_answered_while_a_large_needs_upload_lands(embedded: Any) -> None:
    backend = embedded
    _pairing_knows_the_directory(backend)
    staff = support.issue_token(backend, "community", f"community:{HERE}")
    path = f"/api/v1/communities/{HERE}/needs/upload"

    def upload() -> Any:
        with support.client(staff) as http:
            return http.post(path, files={"file": ("needs.csv", _needs_file(ROWS))})

    thread, result = _in_background(upload)
    seen = _first_rows(thread, lambda: _needs(backend))  # before: all 20,000 at once
    with support.client(staff) as http:
        need = {"title": "陪护就医", "required_skill": "医疗护理"}
        answered = http.post(f"/api/v1/communities/{HERE}/needs", json=need)
    still_uploading, landed = thread.is_alive(), _needs(backend) - 1
    thread.join()
    assert answered.status_code == 201, answered.text
    # answered mid-way, with the upload's rows still landing, not once they all had
    assert 0 < seen < ROWS and landed < ROWS and still_uploading, (seen, landed)
    uploaded = result["response"]
    assert uploaded.status_code == 201, uploaded.text
    assert (uploaded.json()["accepted"], uploaded.json()["rejected"]) == (ROWS, 0)
    assert _needs(backend) == ROWS + 1


def _failing_on(calls: int, real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, except that its ``calls``-th call raises: the process dying part-way."""
    made = [0]

    def call(*args: Any) -> Any:
        made[0] += 1
        if made[0] == calls:
            raise RuntimeError("the worker died")
        return real(*args)

    return call


def test_a_needs_upload_cut_short_is_finished_by_uploading_it_again(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, data = backend.rt("pairing"), _needs_file(CHUNK * 2 + 500)
    with monkeypatch.context() as patch, rt.uow() as uow:
        patch.setattr(needs, "_add_new", _failing_on(2, needs._add_new))
        with pytest.raises(RuntimeError):
            needs.upload(uow, HERE, "needs", data)
    assert _needs(backend) == CHUNK  # the first chunk stays
    for _ in range(2):  # finishes the rest, then adds nothing
        with rt.uow() as uow:
            summary = needs.upload(uow, HERE, "needs", data)
        assert summary["accepted"] == CHUNK * 2 + 500 == _needs(backend)
    with rt.uow() as uow:
        ids = needs.upload(uow, HERE, "needs", data)["ids"]
    assert ids == summary["ids"]


def _directory_file(units: int) -> bytes:
    header = "kind,code,name,parent_code,level,community_code\n"
    lines = "".join(f"unit,UL{i:05d},单位{i},410303,county,{HERE}\n" for i in range(units))
    return (header + lines).encode()


def _events(backend: Any) -> int:
    outbox = outbox_table(backend.rt("registration").db.metadata)
    return _count(backend, "registration", outbox)


def test_a_directory_load_cut_short_keeps_its_events_and_finishes_when_loaded_again(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.load_sample_directory(backend)
    rt, data, before = backend.rt("registration"), _directory_file(CHUNK + 500), _events(backend)
    new_units = Unit.code.like("UL%")
    with monkeypatch.context() as patch, rt.uow() as uow:
        patch.setattr(directory, "_upsert", _failing_on(CHUNK + 200, directory._upsert))
        with pytest.raises(RuntimeError):
            directory.load(data, uow)
    assert _count(backend, "registration", Unit, new_units) == CHUNK
    assert _events(backend) - before == CHUNK  # each row's event committed with it
    with rt.uow() as uow:
        assert directory.load(data, uow) == {"added": 500, "changed": 0, "unchanged": CHUNK}
    with rt.uow() as uow:
        assert directory.load(data, uow)["unchanged"] == CHUNK + 500
    assert _count(backend, "registration", Unit, new_units) == CHUNK + 500
    assert _events(backend) - before == CHUNK + 500  # loading again published nothing
