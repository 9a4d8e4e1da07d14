"""Every route answers what its OpenAPI document says, for every role.

schemathesis generates requests for each operation of ``servicemonth up``'s API (all four
services) from the document itself and sends each one with the token of every role on a
small month (a directory, members, a confirmed report-in, pairings, a wish, a record); each
answer must match the documented schema of its status, and none may be a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from services.app import create_app
from shared.config import SERVICES
from tests import support
from tests.conftest import Backend, open_backend

#: (role, scope) of the tokens each generated request is sent with.
ROLES = [
    ("admin", "city"),
    ("operator", "410303"),
    ("leader", "410303"),
    ("community", "410303001001"),
    ("unit", "U410303001"),
]


def _seed(backend: Backend) -> dict[str, str]:
    """A few members, one report-in confirmed and consumed downstream; their ids."""
    support.load_sample_directory(backend)
    admin = support.client(support.issue_token(backend, "admin", "city"))
    ids = []
    for seed in range(3):
        answer = admin.post("/api/v1/members", json=support.member_body(seed, consent=True))
        assert answer.status_code == 201, answer.text
        ids.append(answer.json())
    first = ids[0]["registrations"][0]["id"]
    assert admin.post(f"/api/v1/registrations/{first}/confirm").status_code == 200
    support.relay_all(backend)
    support.run_consumers(
        [support.consumer(backend, s) for s in support.CONSUMERS], until=lambda: False, timeout=3
    )
    return {"member": str(ids[0]["id"])}


@pytest.fixture(scope="module")
def month(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Backend, dict[str, str]]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        home = Path(tmp_path_factory.mktemp("conformance")) / "var"
        webhook = {"SERVICEMONTH_NOTIFY_WEBHOOK_TOKEN": "conformance-webhook-token"}
        with open_backend("embedded", home, monkeypatch, request, **webhook) as backend:
            yield backend, _seed(backend)


def _operations() -> list[tuple[str, str]]:
    spec = create_app(SERVICES).openapi()
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]


@pytest.fixture(scope="module")
def api_schema(month: tuple[Backend, dict[str, str]]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(SERVICES))


OPERATIONS = _operations()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_route_answers_as_documented(
    method: str, path: str, api_schema: Any, month: tuple[Backend, dict[str, str]]
) -> None:
    backend, seeded = month
    tokens = [support.issue_token(backend, role, scope) for role, scope in ROLES]
    tokens.append(support.issue_token(backend, "member", f"member:{seeded['member']}"))
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    def answers_as_documented(case: schemathesis.Case) -> None:
        for token in tokens:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {token}"},
                checks=[not_a_server_error, response_schema_conformance],
            )

    answers_as_documented()
