"""Helpers the integration and end-to-end tests share: drive the pipeline, read effects."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn
from fastapi.testclient import TestClient

from services import registry
from services.app import create_app
from services.demo_data import SAMPLE_DIRECTORY, synthetic_member
from services.notify.channels import OutgoingSms
from services.notify.rendering import render_sms, sample_params
from services.registration import directory
from shared import runtime as runtime_mod
from shared import tokens
from shared.clock import SimulatedClock
from shared.config import SERVICES
from shared.consumer import EventConsumer
from shared.pii import mask_phone
from shared.relay import OutboxRelay
from shared.runtime import Runtime

CONSUMERS = ("pairing", "notify", "reporting")
UNITS = ["U410300001", "U410303001", "U410305001"]
COMMUNITIES = ["410303001001", "410303002001", "410305001001"]


def free_port() -> int:
    """A TCP port nobody listens on now, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(services: Iterable[str]) -> Iterator[str]:
    """``services``' routes on a real uvicorn server on a free loopback port: its base URL."""
    config = uvicorn.Config(
        create_app(list(services)), host="127.0.0.1", port=free_port(), log_level="error"
    )
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not web.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert web.started
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        web.should_exit = True
        thread.join(10)


#: How a fake HTTP service answers a POST: (path, headers, body) → (status, JSON, delay s).
Answer = Callable[[str, Any, bytes], tuple[int, dict[str, Any], float]]


@contextlib.contextmanager
def json_server(answer: Answer) -> Iterator[str]:
    """A fake HTTP service on a loopback port answering each POST with JSON, after the delay
    ``answer`` gives (a client that gave up meanwhile is ignored): its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, body, delay = answer(self.path, self.headers, raw)
            time.sleep(delay)
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up waiting

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def on_simulated_clock(backend: Any, start: datetime) -> SimulatedClock:
    """Put every service of ``backend`` on one simulated clock starting at ``start``."""
    sim = SimulatedClock(start)
    for service in SERVICES:
        rt = backend.rt(service)
        backend.runtimes[service] = Runtime(rt.service, rt.settings, rt.db, sim)
        runtime_mod.override(service, backend.runtimes[service])
    return sim


def load_sample_directory(backend: Any) -> None:
    rt = backend.rt("registration")
    with rt.uow() as uow:
        directory.load(SAMPLE_DIRECTORY.read_bytes(), uow)
        uow.commit()


def issue_token(backend: Any, role: str, scope: str) -> str:
    """A signed bearer token for ``role`` in ``scope`` (a member's names the member as its
    subject, so a withdrawal revokes it), as registration would sign it."""
    subject = scope if role == "member" else f"test:{role}:{scope}"
    token, _ = tokens.sign(
        backend.settings, subject=subject, role=role, scope=scope, ttl=timedelta(hours=2)
    )
    return token


def client(token: str | None = None) -> TestClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return TestClient(create_app(SERVICES), headers=headers)


def member_body(seed: int, **overrides: Any) -> dict[str, Any]:
    body = synthetic_member(random.Random(seed), UNITS, COMMUNITIES)
    body.update(overrides)
    return body


def relay_all(backend: Any, service: str = "registration") -> int:
    relay = OutboxRelay(backend.rt(service).db, backend.settings, service)
    total = 0
    try:
        while sent := relay.run_once():
            total += sent
    finally:
        relay.close()
    return total


def consumer(backend: Any, service: str) -> EventConsumer:
    rt = backend.rt(service)
    return EventConsumer(
        service,
        backend.settings,
        registry.handlers(service, rt),
        lambda env: rt.uow(env.id),
        retry_delays=(0.05, 0.1),
    )


def stats(http: TestClient, service: str) -> dict[str, int]:
    """What ``service`` holds, through its operator endpoint."""
    response = http.get(f"/api/v1/ops/{service}")
    assert response.status_code == 200, response.text
    result: dict[str, int] = response.json()
    return result


def run_consumers(
    consumers: Iterable[EventConsumer],
    until: Callable[[], bool],
    timeout: float = 30.0,
    settle: float = 0.0,
) -> bool:
    """Run ``consumers`` in threads until ``until()`` holds (then ``settle`` s more)."""
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in consumers]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    ok = False
    try:
        while time.monotonic() < deadline:
            if until():
                ok = True
                break
            time.sleep(0.1)
        if ok and settle:
            time.sleep(settle)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    return ok


class TcpProxy:
    """A loopback TCP proxy that can be taken down and brought back: 'the broker is away'."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def sample_sms(
    out_id: str = "0b6f1c2e-welcome", kind: str = "welcome", phone: str = "13812348000"
) -> OutgoingSms:
    """An SMS of ``kind`` rendered from the kind's sample parameters, ready for a provider."""
    rendered = render_sms(kind, sample_params(kind))
    return OutgoingSms(
        out_id=out_id,
        phone=phone,
        phone_masked=mask_phone(phone),
        kind=kind,
        template_code=rendered.code_for("aliyun"),
        params=rendered.params,
        text=rendered.text,
        segments=rendered.segments,
    )
