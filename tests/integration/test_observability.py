"""What the operator watches: /metrics figures that follow a small run, and JSON log lines
with correlation ids, an access log and no personal datum in clear."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from kombu import Producer
from prometheus_client.parser import text_string_to_metric_families

from services.app import create_app
from shared import logs
from shared.bus import EVENTS, connect, declare
from shared.config import SERVICES
from shared.workers import make_celery, task_queue
from tests import support
from tests.conftest import open_backend
from tests.integration.notify_support import dispatched

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "metrics-" + "x" * 24

Figures = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(params=["embedded", "production"])
def watched(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A backend with a metrics token, logging JSON at INFO into a buffer (``.log``)."""
    with open_backend(
        request.param,
        tmp_path / "var",
        monkeypatch,
        request,
        SERVICEMONTH_METRICS_TOKEN=METRICS_TOKEN,
        SERVICEMONTH_LOG_LEVEL="INFO",
    ) as backend:
        root = logging.getLogger()
        level = root.level
        backend.log = io.StringIO()
        logs.configure(backend.settings, stream=backend.log, force=True)
        try:
            support.load_sample_directory(backend)
            yield backend
        finally:
            logs.unconfigure()
            root.setLevel(level)


def figures(http: Any) -> Figures:
    response = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    return parse(response.text)


def parse(exposition: str) -> Figures:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(found: Figures, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def _taken(consumer: Any) -> int:
    stats = consumer.stats
    return int(stats.applied + stats.duplicates + stats.ignored + stats.dead)


def total(found: Figures, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples that carry ``labels`` (whatever their other labels)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in found.items() if n == name and wanted <= set(have))


def log_lines(backend: Any) -> list[dict[str, Any]]:
    text = backend.log.getvalue()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def poison(backend: Any, correlation: str) -> None:
    """A message for notify that is not a valid event (its payload misses every field)."""
    body = {
        "id": str(uuid.uuid4()),
        "type": "member.registered",
        "version": 1,
        "occurred_at": "2016-06-27T02:00:00Z",
        "district": "410303",
        "campaign": "servicemonth-2016",
        "producer": "registration",
        "correlation_id": correlation,
        "payload": {},
    }
    with connect(backend.settings) as conn:
        declare(conn, backend.settings)
        Producer(conn.channel()).publish(
            json.dumps(body),
            exchange=EVENTS,
            routing_key="410303.member.registered",
            content_type="application/json",
            delivery_mode=2,
        )


def test_metrics_follow_a_registration_through_relay_and_consumers(watched: Any) -> None:
    backend = watched
    member = support.member_body(7)
    with (
        support.client(support.issue_token(backend, "admin", "city")) as http,
        dispatched() as queue,
    ):
        before = figures(http)
        created = http.post(
            "/api/v1/members", json=member, headers={"X-Request-ID": "req-observability-1"}
        )
        assert created.status_code == 201, created.text
        assert created.headers["X-Request-ID"] == "req-observability-1"
        ids = [r["id"] for r in created.json()["registrations"]]
        assert http.post("/api/v1/registrations/confirm", json={"ids": ids}).status_code == 200

        waiting = figures(http)
        assert value(waiting, "servicemonth_outbox_backlog", service="registration") >= 2
        assert value(waiting, "servicemonth_outbox_oldest_age_seconds", service="registration") >= 0

        sent = support.relay_all(backend)
        relayed = figures(http)
        assert value(relayed, "servicemonth_outbox_backlog", service="registration") == 0
        published = "servicemonth_events_published_total"
        assert total(relayed, published, service="registration") == sent + total(
            before, published, service="registration"
        )
        assert value(relayed, published, service="registration", type="member.registered") > 0
        assert value(relayed, "servicemonth_event_queue_messages", service="notify") >= sent

        poison(backend, correlation="c0ffee00-0000-4000-8000-000000000001")
        notify = support.consumer(backend, "notify")
        assert support.run_consumers(
            [notify], until=lambda: _taken(notify) >= sent + 1 and notify.stats.dead >= 1
        )
        after = figures(http)
        assert queue, "the welcome was queued"

    consumed = "servicemonth_events_consumed_total"
    assert total(after, consumed, service="notify") == sent + 1 + total(
        before, consumed, service="notify"
    )
    applied = {"service": "notify", "type": "member.registered", "outcome": "applied"}
    assert value(after, consumed, **applied) > value(before, consumed, **applied)
    dead = {"service": "notify", "type": "member.registered", "outcome": "dead_lettered"}
    assert value(after, consumed, **dead) == 1 + value(before, consumed, **dead)
    assert value(after, "servicemonth_event_queue_messages", service="notify") == 0
    assert value(after, "servicemonth_dead_letter_messages", service="notify") == 1
    assert value(after, "servicemonth_notifications", channel="sms", status="queued") >= 1
    assert value(after, "servicemonth_state_readable", service="notify", source="broker") == 1
    assert value(after, "servicemonth_state_readable", service="notify", source="database") == 1
    latency = "servicemonth_http_request_duration_seconds_count"
    labels = {"service": "all", "method": "POST", "route": "/api/v1/members", "status": "201"}
    assert value(after, latency, **labels) == 1 + value(before, latency, **labels)

    lines = log_lines(backend)  # every line is JSON (json.loads raised otherwise)
    (access,) = [line for line in lines if line.get("request_id") == "req-observability-1"]
    assert access["logger"] == "servicemonth.access"
    assert (access["method"], access["route"], access["status"]) == ("POST", "/api/v1/members", 201)
    assert access["duration_ms"] >= 0
    dead_line = [line for line in lines if "dead-lettering" in line["event"]]
    assert dead_line and dead_line[0]["correlation_id"] == "c0ffee00-0000-4000-8000-000000000001"
    text = backend.log.getvalue()
    assert member["id_number"] not in text and member["phone"] not in text
    assert "/metrics" not in [line.get("route") for line in lines]  # polled: DEBUG only


def test_metrics_answer_loopback_and_the_token_and_nobody_else(watched: Any) -> None:
    app = create_app(SERVICES)
    with TestClient(app) as outsider:  # the test client's address is "testclient"
        assert outsider.get("/metrics").status_code == 404
        wrong = outsider.get("/metrics", headers={"Authorization": "Bearer " + "y" * 32})
        assert wrong.status_code == 404
        assert figures(outsider)  # with the token
    with TestClient(app, client=("127.0.0.1", 40000)) as local:
        assert local.get("/metrics").status_code == 200
        proxied = local.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 404  # through the front proxy: an outsider
        answer = local.get("/healthz")
        assert len(answer.headers["X-Request-ID"]) == 32  # made up when none was given


def test_latency_and_access_lines_name_the_route_template_never_a_value_from_the_path(
    watched: Any,
) -> None:
    member_id, id_number = str(uuid.uuid4()), support.member_body(5)["id_number"]
    token = support.issue_token(watched, "admin", "city")
    with TestClient(
        create_app(SERVICES),
        client=("127.0.0.1", 40000),
        headers={"Authorization": f"Bearer {token}"},
    ) as local:
        local.get(f"/api/v1/members/{member_id}/pairings")
        assert local.get(f"/api/v1/nothing/{id_number}").status_code == 404
        exposition = local.get("/metrics").text
    assert member_id not in exposition and id_number not in exposition
    assert 'route="/api/v1/members/{member_id}/pairings"' in exposition
    assert 'route="unmatched",service="all",status="404"' in exposition
    routes = [line.get("route") for line in log_lines(watched)]
    assert "/api/v1/members/{member_id}/pairings" in routes and "unmatched" in routes
    assert member_id not in watched.log.getvalue() and id_number not in watched.log.getvalue()


def test_metrics_answer_within_seconds_and_say_so_when_the_broker_is_away(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = support.free_port()  # nothing listens there
    with (
        open_backend(
            "embedded",
            tmp_path / "var",
            monkeypatch,
            request,
            SERVICEMONTH_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{closed}//",
        ),
        TestClient(create_app(SERVICES), client=("127.0.0.1", 40000)) as local,
    ):
        started = time.monotonic()
        response = local.get("/metrics")
        took = time.monotonic() - started
    assert response.status_code == 200 and took < 10
    found = parse(response.text)
    for service in SERVICES:
        assert value(found, "servicemonth_state_readable", service=service, source="broker") == 0
        readable = value(found, "servicemonth_state_readable", service=service, source="database")
        assert readable == 1
    assert value(found, "servicemonth_outbox_backlog", service="registration") == 0


def test_a_log_line_never_holds_an_id_number_or_mobile_in_clear(watched: Any) -> None:
    member = support.member_body(11)
    logging.getLogger("servicemonth.test").warning(
        "a careless line: %s %s", member["id_number"], member["phone"]
    )
    (line,) = [x for x in log_lines(watched) if x["logger"] == "servicemonth.test"]
    assert member["id_number"] not in line["event"] and member["phone"] not in line["event"]
    assert member["id_number"][:6] + "********" in line["event"]
    assert member["phone"][:3] + "****" + member["phone"][-4:] in line["event"]


# --- separate processes: the consumer counts, the HTTP process shows it --------------------


@pytest.mark.parametrize(
    "way",
    # under up: make e2e-deployment (tests/conftest.py)
    ["serve and consume", pytest.param("up", marks=[pytest.mark.deployment])],
)
def test_http_shows_what_the_consume_process_counted_and_every_process_logs_json(
    way: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = support.free_port()
    with open_backend("embedded", tmp_path / "var", monkeypatch, request) as backend:
        support.load_sample_directory(backend)
        token = support.issue_token(backend, "admin", "city")
        env = {**os.environ, **backend.env, "SERVICEMONTH_LOG_LEVEL": "INFO"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        exe = [sys.executable, "-m", "services.cli"]
        logs_dir = tmp_path / "logs"
        logs_dir.mkdir()
        commands = {
            "serve": ["serve", "registration", "--port", str(port)],
            "consume": ["consume", "registration"],
        }
        if way == "up":  # its children write to its stderr
            commands = {"serve": ["up", "--port", str(port), "--no-scheduler"]}
        procs = {}
        for name, argv in commands.items():
            with (logs_dir / f"{name}.log").open("wb") as err:  # the child keeps its copy
                procs[name] = subprocess.Popen(
                    [*exe, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err
                )
        member = support.member_body(23)
        base = f"http://127.0.0.1:{port}"
        published: float = 0.0
        try:
            _wait_for(lambda: _get(f"{base}/healthz") == 200, 30)
            created = httpx.post(
                f"{base}/api/v1/members",
                json=member,
                headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-e2e-1"},
                timeout=10,
            )
            assert created.status_code == 201, created.text

            def relayed() -> bool:
                nonlocal published
                found = parse(httpx.get(f"{base}/metrics", timeout=10).text)
                published = value(
                    found,
                    "servicemonth_events_published_total",
                    service="registration",
                    type="member.registered",
                )
                return published >= 1

            _wait_for(relayed, 30)
        finally:
            for proc in procs.values():
                proc.send_signal(signal.SIGTERM)
            for proc in procs.values():
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    assert published >= 1  # counted in the consume process, shown by serve
    serve_lines = _json_lines(logs_dir / "serve.log")
    consume_lines = _json_lines(logs_dir / ("serve.log" if way == "up" else "consume.log"))
    assert any(
        line.get("request_id") == "req-e2e-1" and line.get("route") == "/api/v1/members"
        for line in serve_lines
    )
    assert any("stopping" in line["event"] for line in consume_lines)  # it logged, as JSON
    text = "".join(path.read_text() for path in logs_dir.iterdir())
    assert member["id_number"] not in text and member["phone"] not in text


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert lines, f"{path.name} is empty"
    return [json.loads(line) for line in lines]  # a line that is not JSON fails here


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s")


# --- Celery's task events: what Flower reads -------------------------------------------------


@pytest.mark.deployment  # make e2e-deployment (tests/conftest.py)
def test_a_worker_and_its_client_send_the_task_events_flower_shows(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_backend("production", tmp_path / "var", monkeypatch, request) as backend:
        app = make_celery("notify", backend.settings)
        seen: list[str] = []
        finished = threading.Event()

        def on_event(event: dict[str, Any]) -> None:
            seen.append(str(event["type"]))
            if event["type"] in ("task-succeeded", "task-failed"):
                finished.set()

        env = {**os.environ, **backend.env}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with app.connection_for_read() as conn:
            receiver = app.events.Receiver(conn, handlers={"*": on_event})
            listening = threading.Thread(
                target=lambda: receiver.capture(limit=None, timeout=None), daemon=True
            )
            listening.start()
            worker = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "worker", "notify", "--concurrency", "1"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_for(lambda: "worker-online" in seen or "worker-heartbeat" in seen, 60)
                app.send_task(
                    "notify.sweep_reminders", queue=task_queue("notify", backend.settings)
                )
                assert finished.wait(60), seen
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
                receiver.should_stop = True
                listening.join(10)
    assert {"task-sent", "task-received", "task-started", "task-succeeded"} <= set(seen), seen
