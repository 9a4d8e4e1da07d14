"""The ``sfs://`` transport keeps a broker's promises across OS processes sharing one folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Consumer, Exchange, Message, Producer, Queue

import shared.fstransport as fst

REPO = Path(__file__).resolve().parents[2]


# --- helpers ------------------------------------------------------------------------------


def connect(root: Path, **options: Any) -> Connection:
    return Connection("sfs://", transport_options={"root": str(root), **options})


def env() -> dict[str, str]:
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": pythonpath}


def python(code: str, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def publish(conn: Connection, queue: str, bodies: list[Any]) -> None:
    producer = Producer(conn.default_channel)
    for body in bodies:
        producer.publish(body, routing_key=queue, serializer="json")


def drain(conn: Connection, queues: list[Queue], idle: float = 0.3) -> list[Message]:
    """Consume (and ack) until nothing arrives for ``idle`` seconds."""
    got: list[Message] = []

    def on_message(body: Any, message: Message) -> None:
        got.append(message)
        message.ack()

    with Consumer(conn, queues, callbacks=[on_message], accept=["json"]):
        while True:
            try:
                conn.drain_events(timeout=idle)
            except TimeoutError:  # what Kombu raises (socket.timeout)
                return got


def claimed_files(root: Path) -> list[Path]:
    return sorted((root / "processing").rglob("*.msg"))


def ready_files(root: Path) -> list[Path]:
    return sorted((root / "queues").rglob("*.msg"))


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Connection]:
    with connect(tmp_path / "broker") as c:
        yield c


# --- configuration ------------------------------------------------------------------------


def test_alias_and_root_option(tmp_path: Path) -> None:
    with connect(tmp_path / "b") as c:
        assert isinstance(c.transport, fst.Transport)
        c.connect()
        assert (tmp_path / "b" / "queues").is_dir()
        assert c.transport.polling_interval == 0.05
    with pytest.raises(ValueError, match="root"):
        Connection("sfs://").connect()


# --- no half-written reads ----------------------------------------------------------------


def test_reader_never_sees_a_partial_file(
    conn: Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "broker"
    jobs = Queue("jobs")(conn.default_channel)
    jobs.declare()

    # A writer half-way through its temp file: nothing to see until it renames.
    payload = {
        "body": json.dumps({"n": "y" * 5000}),
        "content-type": "application/json",
        "content-encoding": "utf-8",
        "headers": {},
        "properties": {
            "body_encoding": "utf-8",
            "delivery_info": {"exchange": "", "routing_key": "jobs"},
            "delivery_tag": "t",
            "priority": 0,
        },
    }
    data = json.dumps(payload).encode()
    tmp = root / ".tmp" / "writer.tmp"
    with open(tmp, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        assert jobs.get() is None
        assert jobs.queue_declare(passive=True).message_count == 0
        f.write(data[len(data) // 2 :])
    tmp.rename(root / "queues" / "jobs" / fst._message_name())
    whole = jobs.get()
    assert whole is not None and whole.decode() == {"n": "y" * 5000}
    whole.ack()

    # The real writer, caught between fsync and rename: still nothing to see.
    seen: list[object] = []
    real_fsync = os.fsync

    def fsync_then_look(fd: int) -> None:
        real_fsync(fd)
        seen.append(jobs.get())

    monkeypatch.setattr(os, "fsync", fsync_then_look)
    publish(conn, "jobs", [{"n": "x" * 5000}])
    monkeypatch.undo()
    assert seen == [None]

    message = jobs.get()
    assert message is not None
    assert message.decode() == {"n": "x" * 5000}
    message.ack()
    assert jobs.get() is None


# --- ack semantics ------------------------------------------------------------------------


def test_requeue_redelivers_in_place_and_reject_drops(conn: Connection, tmp_path: Path) -> None:
    root = tmp_path / "broker"
    jobs = Queue("jobs")(conn.default_channel)
    jobs.declare()
    publish(conn, "jobs", ["a", "b"])

    first = jobs.get()
    assert first is not None and first.decode() == "a"
    assert not first.delivery_info.get("redelivered")
    assert len(claimed_files(root)) == 1 and len(ready_files(root)) == 1
    first.requeue()

    again = jobs.get()  # back in its place: before "b"
    assert again is not None and again.decode() == "a"
    assert again.delivery_info["redelivered"] is True
    again.reject()

    second = jobs.get()
    assert second is not None and second.decode() == "b"
    second.ack()
    assert jobs.get() is None
    assert claimed_files(root) == [] and ready_files(root) == []


def test_unacked_messages_return_when_the_channel_closes(tmp_path: Path) -> None:
    root = tmp_path / "broker"
    with connect(root) as c:
        publish(c, "jobs", ["a", "b"])
        message = Queue("jobs")(c.default_channel).get()
        assert message is not None and message.decode() == "a"
    assert claimed_files(root) == []
    with connect(root) as c:
        got = drain(c, [Queue("jobs")])
        assert [(m.decode(), bool(m.delivery_info.get("redelivered"))) for m in got] == [
            ("a", True),
            ("b", False),
        ]


def test_no_ack_consumers_settle_on_delivery(tmp_path: Path) -> None:
    root = tmp_path / "broker"
    with connect(root) as c:
        publish(c, "jobs", ["a"])
        got: list[Any] = []
        with Consumer(c, [Queue("jobs")], callbacks=[lambda b, m: got.append(b)], no_ack=True):
            c.drain_events(timeout=2)
        assert got == ["a"]
        assert claimed_files(root) == []
    with connect(root) as c:
        assert drain(c, [Queue("jobs")], idle=0.1) == []


# --- crash recovery -----------------------------------------------------------------------

FETCH_AND_HANG = """
    import sys, time
    from pathlib import Path
    from kombu import Connection, Queue
    import shared.fstransport
    root, signal_file = sys.argv[1], Path(sys.argv[2])
    with Connection("sfs://", transport_options={"root": root}) as conn:
        message = Queue("jobs")(conn.default_channel).get()
        signal_file.with_suffix(".part").write_text(message.decode())
        signal_file.with_suffix(".part").rename(signal_file)
        time.sleep(60)
"""

CONSUME_FOR = """
    import json, socket, sys, time
    from kombu import Connection, Queue
    import shared.fstransport
    got = []
    def on_message(body, message):
        got.append([body, bool(message.delivery_info.get("redelivered"))])
        message.ack()
    with Connection("sfs://", transport_options={"root": sys.argv[1]}) as conn:
        with conn.Consumer([Queue("jobs")], callbacks=[on_message]):
            deadline = time.monotonic() + float(sys.argv[2])
            while time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.1)
                except socket.timeout:
                    pass
    print(json.dumps(got))
"""


def test_sigkilled_consumer_message_is_redelivered_exactly_once(tmp_path: Path) -> None:
    root = tmp_path / "broker"
    with connect(root) as c:
        publish(c, "jobs", ["job-0", "job-1", "job-2"])

    signal_file = tmp_path / "fetched"
    child = python(FETCH_AND_HANG, str(root), str(signal_file))
    try:
        # the file appears before its text does: wait for the text
        wait_for(lambda: signal_file.exists() and signal_file.read_text() != "")
        assert signal_file.read_text() == "job-0"

        # While the child lives, its claim is its own: others get the rest, and ack it.
        with connect(root) as c:
            assert [m.decode() for m in drain(c, [Queue("jobs")])] == ["job-1", "job-2"]
        assert len(claimed_files(root)) == 1
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL

    # Two consumers start at once; the dead child's message reaches exactly one of them.
    consumers = [python(CONSUME_FOR, str(root), "1.0") for _ in range(2)]
    results = [json.loads(finish(p)) for p in consumers]
    assert sorted(results, key=len) == [[], [["job-0", True]]]
    assert claimed_files(root) == [] and ready_files(root) == []
    # The dead child's lock and folder are gone, and so are those of the consumers that
    # exited cleanly; only this process's own owner remains.
    owners = {p.name.split("-")[0] for p in (root / "processing").iterdir()}
    assert owners == {str(os.getpid())}


def test_forked_child_is_its_own_owner(tmp_path: Path) -> None:
    root = tmp_path / "broker"
    with connect(root) as c:
        publish(c, "jobs", ["job-0", "job-1"])
        held = Queue("jobs")(c.default_channel).get()  # the parent's claim, kept open
        assert held is not None and held.decode() == "job-0"

        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                c2 = connect(root)
                taken = Queue("jobs")(c2.default_channel).get()
                # Dies holding job-1: no ack, no channel close, no exit hooks.
                os._exit(0 if taken is not None and taken.decode() == "job-1" else 2)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0

        # The child's claim is recovered; the parent's, still alive, is not touched.
        with connect(root) as c3:
            got = drain(c3, [Queue("jobs")])
            assert [(m.decode(), m.delivery_info.get("redelivered")) for m in got] == [
                ("job-1", True)
            ]
        assert len(claimed_files(root)) == 1
        held.ack()
    assert claimed_files(root) == [] and ready_files(root) == []


# --- routing ------------------------------------------------------------------------------

DECLARE_BINDINGS = """
    import sys
    from kombu import Connection, Exchange, Queue, binding
    import shared.fstransport
    events = Exchange("events", type="topic", durable=True)
    with Connection("sfs://", transport_options={"root": sys.argv[1]}) as conn:
        channel = conn.default_channel
        Queue(
            "district",
            bindings=[
                binding(events, routing_key="410303.*.registered"),
                binding(events, routing_key="410303.#"),
            ],
        )(channel).declare()
        Queue("registered", events, routing_key="410303.*.registered")(channel).declare()
"""

GET_ALL = """
    import json, sys
    from kombu import Connection, Queue
    import shared.fstransport
    out = {}
    with Connection("sfs://", transport_options={"root": sys.argv[1]}) as conn:
        for name in sys.argv[2:]:
            queue, out[name] = Queue(name)(conn.default_channel), []
            while (message := queue.get()) is not None:
                out[name].append(message.delivery_info["routing_key"])
                message.ack()
    print(json.dumps(out))
"""


def test_topic_routing_across_processes(tmp_path: Path) -> None:
    root = tmp_path / "broker"
    finish(python(DECLARE_BINDINGS, str(root)))

    keys = [
        "410303.a.registered",  # both patterns of "district" (delivered once), and "registered"
        "410303.a.b.registered",  # '#' only: '*' is exactly one word
        "410303.x",
        "410305.x",  # nobody: '410303.#' must not match another district
        "410305.a.registered",
    ]
    # This process never declared the exchange: its type comes from the shared folder.
    with connect(root) as c:
        producer = Producer(c.default_channel)
        for key in keys:
            producer.publish({"key": key}, exchange="events", routing_key=key)

    got = json.loads(finish(python(GET_ALL, str(root), "district", "registered")))
    assert got == {
        "district": ["410303.a.registered", "410303.a.b.registered", "410303.x"],
        "registered": ["410303.a.registered"],
    }
    assert ready_files(root) == [] and claimed_files(root) == []


BIND_MANY = """
    import sys, time
    from pathlib import Path
    from kombu import Connection, Exchange, Queue
    import shared.fstransport
    root, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    with Connection("sfs://", transport_options={"root": root}) as conn:
        channel = conn.default_channel
        queues = [
            Queue(name, Exchange(f"ex{i}", type="topic"), routing_key="k.#") for i in range(60)
        ]
        go.with_name(f"ready-{name}").touch()
        while not go.exists():
            time.sleep(0.001)
        # All at once, each first bind to an exchange racing the others to create its table.
        for queue in queues:
            queue(channel).declare()
"""


def test_concurrent_binding_loses_nothing(tmp_path: Path) -> None:
    root = tmp_path / "broker"
    go = tmp_path / "go"
    names = [f"p{n}" for n in range(4)]
    procs = [python(BIND_MANY, str(root), name, str(go)) for name in names]
    wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == len(procs))
    go.touch()
    for proc in procs:
        finish(proc)
    for i in range(60):
        table = json.loads((root / "control" / f"ex{i}.exchange").read_text())
        assert sorted(row[2] for row in table) == names, f"ex{i}"


def test_queue_delete_removes_folder_and_bindings(conn: Connection, tmp_path: Path) -> None:
    root = tmp_path / "broker"
    channel = conn.default_channel
    events = Exchange("events", type="topic")
    queue = Queue("district", events, routing_key="410303.#")(channel)
    queue.declare()
    Producer(channel).publish("x", exchange="events", routing_key="410303.a")
    assert queue.queue_declare(passive=True).message_count == 1

    queue.delete()
    assert not (root / "queues" / "district").exists()
    assert channel.get_table("events") == []
    Producer(channel).publish("y", exchange="events", routing_key="410303.a")
    assert ready_files(root) == []


def test_mandatory_unroutable_message_is_returned(conn: Connection) -> None:
    channel = conn.default_channel
    events = Exchange("events", type="topic")
    Queue("district", events, routing_key="410303.#")(channel).declare()
    returned: list[tuple[int, str, Any]] = []

    def on_return(exc: Any, exchange: str, key: str, message: Message) -> None:
        returned.append((exc.reply_code, key, message.properties.get("message_id")))

    producer = Producer(channel, exchange=events, on_return=on_return)
    producer.publish("x", routing_key="410303.a", mandatory=True, message_id="routed")
    producer.publish("y", routing_key="410305.a", mandatory=True, message_id="lost")
    producer.publish("z", routing_key="410305.b", message_id="not-mandatory")
    assert returned == [(312, "410305.a", "lost")]
    assert Queue("district")(channel).queue_declare(passive=True).message_count == 1


# --- order and speed ----------------------------------------------------------------------


def test_drains_5000_in_order_with_few_listings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "broker"
    n = 5000
    # fsync is exercised elsewhere; here it would only make the test slow on real disks.
    with connect(root, fsync=False) as c:
        Queue("bulk")(c.default_channel).declare()
        publish(c, "bulk", list(range(n)))
        assert Queue("bulk")(c.default_channel).queue_declare(passive=True).message_count == n

        listings = 0
        real_listdir = os.listdir

        def counting_listdir(path: Any = ".") -> list[str]:
            nonlocal listings
            listings += 1
            return real_listdir(path)

        monkeypatch.setattr(os, "listdir", counting_listdir)
        got = [m.decode() for m in drain(c, [Queue("bulk")], idle=0.2)]
        monkeypatch.undo()

    assert got == list(range(n))
    assert listings < 100  # one listing per batch, not one per message
    assert ready_files(root) == [] and claimed_files(root) == []


# --- celery -------------------------------------------------------------------------------

CELERY_APP = """
import os
from pathlib import Path

from celery import Celery

import shared.fstransport  # noqa: F401

app = Celery("sfsapp", set_as_current=False)
app.conf.update(
    broker_url="sfs://",
    broker_transport_options={"root": os.environ["SFS_ROOT"], "recovery_interval": 0.5},
    broker_connection_retry_on_startup=True,
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
    task_ignore_result=True,
    task_acks_late=True,
    result_backend=None,
)


@app.task(name="sfs.touch")
def touch(path, text):
    Path(path).write_text(text)
"""


def test_celery_round_trip(tmp_path: Path) -> None:
    from celery import Celery

    root = tmp_path / "broker"
    (tmp_path / "sfsapp.py").write_text(CELERY_APP)
    sender = Celery("sender", set_as_current=False)
    sender.conf.update(
        broker_url="sfs://",
        broker_transport_options={"root": str(root)},
        task_ignore_result=True,
    )
    done = tmp_path / "done.txt"
    sender.send_task("sfs.touch", args=[str(done), "hello"])
    assert len(ready_files(root)) == 1

    worker = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "sfsapp", "worker", "--pool=solo",
            "--without-mingle", "--without-gossip", "--without-heartbeat",
            "--loglevel=WARNING",
        ],
        cwd=tmp_path,
        env={**env(), "SFS_ROOT": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        # the file appears before its text does: wait for the text
        wait_for(lambda: done.exists() and done.read_text() != "", timeout=12)
        assert done.read_text() == "hello"
        wait_for(lambda: claimed_files(root) == [])  # acked (late) after the task ran
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=10)
    assert worker.returncode == 0, out
    assert ready_files(root) == [] and claimed_files(root) == []
