# Kombu's virtual transport is unannotated; calling into it is the point of this module.
# mypy: disable-error-code="no-untyped-call"
"""``sfs://`` - a filesystem Kombu transport that keeps a broker's promises.

Why not Kombu's own ``filesystem://``? It is fine for one producer and one consumer, but it
breaks down when several processes share one folder as their broker, which is how the
embedded single-machine deployment runs:

* **Half-written reads.** A message file is created in the queue folder and then filled, so
  a consumer listing the folder can pick up (and delete) a partial file.
* **No acknowledgements.** ``_get`` deletes the file before the message is handled; a process
  that dies while handling it loses it for good, and ``reject(requeue=True)`` and the
  restore of unacked messages at channel close republish a *copy* through the exchange
  (which also lands in every other queue the routing key matches).
* **O(n²) draining.** Every ``_get`` lists and sorts the whole data folder, all queues mixed.
* **Racy bindings.** The table of an exchange is created with ``open('wb')`` (truncating,
  before the lock is taken), so two processes binding at once can lose a binding or leave
  trailing garbage; a reader can meet the empty file and fail on it.
* **Process-local metadata.** Exchange types live only in the memory of the process that
  declared them, and one ``BrokerState`` is shared by every folder used in a process.
* **No returns.** ``mandatory`` is ignored, and ``Producer(on_return=...)`` fails outright:
  the channel has no ``events`` table.

This transport fixes those, keeping the parent's binding tables (``<exchange>.exchange``):

* ``_put`` writes to ``<root>/.tmp``, fsyncs, and renames into ``<root>/queues/<queue>/``:
  a rename is atomic, so readers see whole messages or none.
* ``_get`` *claims* a message by renaming it into ``<root>/processing/<owner>/<queue>/``;
  losing that rename means another consumer won. The file goes away on ``basic_ack`` (or a
  reject without requeue); requeue and restore rename it back under its original name, so it
  keeps its place in the order, marked as redelivered.
* Each process holds an exclusive ``flock`` on ``processing/<owner>.lock``. The kernel drops it
  when the process dies however it dies, so any lock another process can take belongs to a
  dead owner: its claimed messages go back to their queues (checked when a consumer starts and
  every ``recovery_interval`` seconds while polling).
* File names are ``<time_ns>_<uuid>.msg`` (monotonic per process) so sorting the folder gives
  publish order; a per-queue batch of the sorted listing makes draining n messages O(n).
* Exchange declarations are stored in ``<root>/exchanges/`` so every process routes with the
  declared type; a ``mandatory`` message that matches no binding goes to ``on_return``.

Use it through the ``sfs`` alias, registered when this module is imported::

    import shared.fstransport  # noqa: F401
    Connection('sfs://', transport_options={'root': '/var/lib/app/broker'})

Transport options: ``root`` (required; created if missing), ``polling_interval`` (default
0.05 s), ``recovery_interval`` (default 2 s), ``fsync`` (default True). POSIX only.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any, ClassVar
from urllib.parse import quote

import kombu.transport
from amqp import spec
from amqp.exceptions import error_for_code
from kombu.exceptions import ChannelError
from kombu.log import get_logger
from kombu.transport import filesystem, virtual
from kombu.utils.json import dumps, loads

__all__ = ["ALIAS", "Channel", "Layout", "Transport"]

logger = get_logger(__name__)

#: The URL scheme: ``sfs://``.
ALIAS = "sfs"
kombu.transport.TRANSPORT_ALIASES[ALIAS] = "shared.fstransport:Transport"

MSG_SUFFIX = ".msg"
LOCK_SUFFIX = ".lock"
#: Temp files older than this are left over by a crashed writer and swept.
TMP_MAX_AGE = 3600.0

Payload = dict[str, Any]
Row = filesystem.exchange_queue_t


@dataclass(frozen=True)
class Layout:
    """Where everything lives under the ``root`` transport option."""

    root: Path

    @property
    def queues(self) -> Path:
        return self.root / "queues"

    @property
    def tmp(self) -> Path:
        return self.root / ".tmp"

    @property
    def processing(self) -> Path:
        return self.root / "processing"

    @property
    def control(self) -> Path:
        return self.root / "control"

    @property
    def exchanges(self) -> Path:
        return self.root / "exchanges"

    @property
    def unreadable(self) -> Path:
        return self.root / "unreadable"

    def queue_dir(self, queue: str) -> Path:
        return self.queues / queue_dirname(queue)

    def create(self) -> None:
        for folder in (self.queues, self.tmp, self.processing, self.control, self.exchanges):
            folder.mkdir(parents=True, exist_ok=True)


def queue_dirname(queue: str) -> str:
    """A folder name for ``queue`` that cannot escape ``queues/`` and cannot collide."""
    name = quote(str(queue), safe="")
    if not name:
        return "%"  # quote() never yields a bare '%', so no queue name maps here
    if not name.strip("."):
        return "%2E" * len(name)  # '.' and '..' name directories
    return name


# --- per-process state: names, owners ----------------------------------------------------

_stamp_lock = threading.Lock()
_last_stamp = 0


def _message_name() -> str:
    """A file name that sorts in publish order, strictly increasing within this process."""
    global _last_stamp
    with _stamp_lock:
        # time_ns() may repeat or step back; order within one producer must not.
        stamp = max(time.time_ns(), _last_stamp + 1)
        _last_stamp = stamp
    return f"{stamp:020d}_{uuid.uuid4().hex}{MSG_SUFFIX}"


class _Owner:
    """This process's claim folder under one root, and the flock that says it is alive."""

    def __init__(self, layout: Layout) -> None:
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.dir = layout.processing / self.id
        self.dir.mkdir(parents=True, exist_ok=True)
        staging = layout.tmp / f"{self.id}{LOCK_SUFFIX}"
        fd = os.open(staging, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        # Locked before it is visible: a scanner never takes a starting owner for a dead one.
        os.rename(staging, layout.processing / f"{self.id}{LOCK_SUFFIX}")
        self.lock_fd = fd
        self.made: set[str] = set()  # claim subfolders already created
        self.last_scan = float("-inf")
        self.scan_lock = threading.Lock()


_owners: dict[Path, _Owner] = {}
_owners_lock = threading.Lock()


def _owner(layout: Layout) -> _Owner:
    owner = _owners.get(layout.root)
    if owner is None:
        with _owners_lock:
            owner = _owners.get(layout.root)
            if owner is None:
                owner = _owners[layout.root] = _Owner(layout)
    return owner


def _after_fork_in_child() -> None:
    global _owners_lock, _stamp_lock
    # The inherited fd shares the parent's lock: closing our copy (never LOCK_UN) keeps the
    # parent's lock alive and lets the parent's death be seen; the child gets its own owner.
    for owner in _owners.values():
        with contextlib.suppress(OSError):
            os.close(owner.lock_fd)
    _owners.clear()
    _owners_lock = threading.Lock()  # may have been held by another thread at fork time
    _stamp_lock = threading.Lock()


def _release_owners_at_exit() -> None:
    # Tidy up after a clean exit if nothing is claimed; otherwise the folder and lock stay
    # for the scanners, which see the lock free once this process is gone.
    for owner in list(_owners.values()):
        try:
            for sub in os.listdir(owner.dir):
                os.rmdir(owner.dir / sub)
            os.rmdir(owner.dir)
        except OSError:
            continue
        _unlink_quiet(owner.dir.with_name(owner.dir.name + LOCK_SUFFIX))


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_release_owners_at_exit)


class _Claims:
    """Delivery tag -> claimed file, meaningful only in the process that claimed."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._paths: dict[str, str] = {}

    def _current(self) -> dict[str, str]:
        if self._pid != os.getpid():
            # A forked child must not ack or requeue what its parent holds.
            self._pid = os.getpid()
            self._paths = {}
        return self._paths

    def add(self, tag: str, path: str) -> None:
        self._current()[tag] = path

    def pop(self, tag: str) -> str | None:
        return self._current().pop(tag, None)


# --- file helpers -------------------------------------------------------------------------


def _unlink_quiet(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _write_tmp(layout: Layout, data: bytes, fsync: bool) -> str:
    """Write ``data`` to a new file in the temp folder; the caller renames it into place."""
    path = os.path.join(layout.tmp, f"{uuid.uuid4().hex}.tmp")
    try:
        with open(path, "xb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    except BaseException:
        _unlink_quiet(path)
        raise
    return path


def _mark_redelivered(layout: Layout, claimed: str, fsync: bool) -> None:
    """Rewrite a claimed message with ``redelivered`` set, atomically (best effort)."""
    try:
        with open(claimed, "rb") as f:
            payload = loads(f.read())
        payload["redelivered"] = True
        payload["properties"].setdefault("delivery_info", {})["redelivered"] = True
        tmp = _write_tmp(layout, dumps(payload).encode(), fsync)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # the flag is a courtesy; the message itself matters more
    try:
        os.rename(tmp, claimed)
    except OSError:
        _unlink_quiet(tmp)


def _return_to_queue(layout: Layout, claimed: str, fsync: bool) -> bool:
    """Move a claimed file back into its queue under its original name."""
    key, name = os.path.split(claimed)
    key = os.path.basename(key)
    _mark_redelivered(layout, claimed, fsync)
    try:
        os.rename(claimed, os.path.join(layout.queues, key, name))
    except FileNotFoundError:
        if os.path.exists(claimed):
            # Its queue was deleted meanwhile: a broker drops a deleted queue's messages.
            _unlink_quiet(claimed)
        return False
    return True


def _reclaim(layout: Layout, owner_dir: str, fsync: bool) -> int:
    """Return every message a dead owner had claimed to its queue; remove its folder."""
    moved = 0
    try:
        keys = os.listdir(owner_dir)
    except FileNotFoundError:
        return 0
    for key in keys:
        sub = os.path.join(owner_dir, key)
        try:
            names = os.listdir(sub)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            if name.endswith(MSG_SUFFIX):
                moved += _return_to_queue(layout, os.path.join(sub, name), fsync)
    shutil.rmtree(owner_dir, ignore_errors=True)
    return moved


def _sweep_tmp(layout: Layout) -> None:
    """Remove what crashed writers left in the temp folder long ago."""
    cutoff = time.time() - TMP_MAX_AGE
    try:
        entries = list(os.scandir(layout.tmp))
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                _unlink_quiet(entry.path)
        except OSError:
            continue


def recover_dead_owners(layout: Layout, own_id: str | None = None, fsync: bool = True) -> int:
    """Requeue the claims of every owner whose lock can be taken; return how many."""
    moved = 0
    try:
        entries = os.listdir(layout.processing)
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.endswith(LOCK_SUFFIX) or entry[: -len(LOCK_SUFFIX)] == own_id:
            continue
        owner_id = entry[: -len(LOCK_SUFFIX)]
        lock_path = os.path.join(layout.processing, entry)
        try:
            fd = os.open(lock_path, os.O_RDWR)
        except FileNotFoundError:
            continue  # another scanner finished it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            count = _reclaim(layout, os.path.join(layout.processing, owner_id), fsync)
            # Last, while still locked: if we die before this, the next scanner redoes it.
            _unlink_quiet(lock_path)
        finally:
            os.close(fd)
        if count:
            logger.warning("Requeued %d message(s) claimed by dead consumer %s", count, owner_id)
        moved += count
    _sweep_tmp(layout)
    return moved


# --- channel ------------------------------------------------------------------------------


class Channel(filesystem.Channel):
    """Filesystem channel with atomic publish, claims, acks and crash recovery."""

    connection: Transport

    def __init__(self, connection: Transport, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        # Kept here: ``self.connection`` is None once the channel is closed.
        self._layout = connection.layout
        self._claims = connection.claims
        self._fsync = connection.fsync
        self._recovery_interval = connection.recovery_interval
        self._batches: dict[str, deque[str]] = {}
        self._no_ack: dict[str, bool] = {}
        self._routed = 0
        #: ``Producer(on_return=...)`` registers here, as with py-amqp (the parent has none).
        self.events: defaultdict[str, set[Callable[..., Any]]] = defaultdict(set)

    # -- layout / parent hooks

    @property
    def control_folder(self) -> Path:
        return self._layout.control

    def _exchange_meta_file(self, exchange: str) -> Path:
        self._exchange_file(exchange)  # validates the name
        return self._layout.exchanges / f"{exchange}.json"

    # -- publishing

    def basic_publish(
        self, message: Payload, exchange: str, routing_key: str, **kwargs: Any
    ) -> Any:
        """Publish; a ``mandatory`` message that reached no queue is returned to the producer.

        Kombu's virtual channels ignore ``mandatory`` and drop such messages silently. Routing
        is synchronous here, so the return is too: ``on_return`` runs before this returns.
        """
        before = self._routed
        result = super().basic_publish(message, exchange, routing_key, **kwargs)
        if kwargs.get("mandatory") and self._routed == before:
            self._return_unroutable(message, exchange, routing_key)
        return result

    def _return_unroutable(self, message: Payload, exchange: str, routing_key: str) -> None:
        exc = error_for_code(312, "NO_ROUTE", spec.Basic.Return, ChannelError)
        handlers = self.events.get("basic_return")
        if not handlers:
            # py-amqp would raise this from a later drain_events; a log is kinder here.
            logger.warning("Unroutable message to %r with key %r: %s", exchange, routing_key, exc)
            return
        returned = self.Message(message, channel=self)
        for callback in list(handlers):
            callback(exc, exchange, routing_key, returned)

    # The two base classes name the second argument differently; Kombu passes it positionally.
    def _put(self, queue: str, payload: Payload, **kwargs: Any) -> None:  # type: ignore[override]
        """Put ``payload`` onto ``queue``: temp file, fsync, rename."""
        qdir = self._layout.queue_dir(queue)
        target = qdir / _message_name()
        try:
            tmp = _write_tmp(self._layout, dumps(payload).encode(), self._fsync)
        except OSError as exc:
            raise ChannelError(f"Cannot write message for queue {queue!r}") from exc
        try:
            try:
                os.rename(tmp, target)
            except FileNotFoundError:
                # First message to a queue nobody declared yet (as the parent allows).
                qdir.mkdir(parents=True, exist_ok=True)
                os.rename(tmp, target)
        except OSError as exc:
            _unlink_quiet(tmp)
            raise ChannelError(f"Cannot add message to queue {queue!r}") from exc
        self._routed += 1

    # -- consuming

    def _claim_dir(self, key: str) -> str:
        owner = _owner(self._layout)
        path = owner.dir / key
        if key not in owner.made:
            path.mkdir(parents=True, exist_ok=True)
            owner.made.add(key)
        return str(path)

    def _listing(self, qdir: str) -> deque[str]:
        try:
            names = os.listdir(qdir)
        except FileNotFoundError:
            return deque()
        return deque(sorted(n for n in names if n.endswith(MSG_SUFFIX)))

    def _get(self, queue: str, timeout: float | None = None) -> Payload:
        """Claim the oldest message of ``queue``."""
        self._maybe_recover()
        key = queue_dirname(queue)
        qdir = os.path.join(self._layout.queues, key)
        claim_dir = self._claim_dir(key)
        batch = self._batches.get(key)
        relisted = False
        while True:
            if not batch:
                if relisted:
                    break
                # One listing serves many gets: this is what makes draining O(n).
                batch = self._batches[key] = self._listing(qdir)
                relisted = True
                if not batch:
                    break
            name = batch.popleft()
            claimed = os.path.join(claim_dir, name)
            try:
                os.rename(os.path.join(qdir, name), claimed)
            except FileNotFoundError:
                continue  # another consumer claimed it first
            payload = self._read_claimed(claimed)
            if payload is None:
                continue
            # A fresh tag per delivery: one publish routed to two queues carries one tag,
            # and both copies may be consumed here.
            tag = uuid.uuid4().hex
            payload["properties"]["delivery_tag"] = tag
            self._claims.add(tag, claimed)
            return payload
        raise Empty()

    def _read_claimed(self, claimed: str) -> Payload | None:
        try:
            with open(claimed, "rb") as f:
                payload = loads(f.read())
        except OSError as exc:
            raise ChannelError(f"Cannot read message file {claimed!r}") from exc
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("properties"), dict):
            return payload
        # Not ours to interpret; keep it aside rather than fail on it forever.
        self._layout.unreadable.mkdir(exist_ok=True)
        os.rename(claimed, self._layout.unreadable / os.path.basename(claimed))
        logger.error("Moved unreadable message %s to %s", claimed, self._layout.unreadable)
        return None

    def _get_and_deliver(self, queue: str, callback: Callable[[Payload, str], Any]) -> None:
        message = self._get(queue)
        if self._no_ack.get(queue):
            # A no_ack consumer never acks: settle now, it is at-most-once by request.
            self._settle(message["properties"]["delivery_tag"])
        callback(message, queue)

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any
    ) -> Any:
        self._recover(force=True)
        # Mirrors the transport's per-queue callback table: the last consumer wins.
        self._no_ack[queue] = bool(no_ack)
        return super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)

    def basic_cancel(self, consumer_tag: str) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)
        result = super().basic_cancel(consumer_tag)
        if queue is not None and queue not in self._active_queues:
            self._no_ack.pop(queue, None)
        return result

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None and no_ack:
            self._settle(message.delivery_tag)
        return message

    # -- acknowledgements

    def _settle(self, delivery_tag: str) -> None:
        """The message is done with: delete its claimed file."""
        path = self._claims.pop(delivery_tag)
        if path is not None:
            try:
                _unlink_quiet(path)
            except OSError as exc:
                raise ChannelError(f"Cannot remove acknowledged message {path!r}") from exc

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        self._settle(delivery_tag)
        super().basic_ack(delivery_tag, multiple=multiple)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if not requeue:
            self._settle(delivery_tag)
        # With requeue, QoS.reject calls _restore_at_beginning -> _restore below.
        super().basic_reject(delivery_tag, requeue=requeue)

    def _restore(self, message: Any) -> None:
        """Put an unacked message back where it was (reject with requeue, channel close).

        The parent republishes a copy through the exchange, which duplicates it into every
        queue the routing key matches; renaming the claimed file back cannot.
        """
        path = self._claims.pop(message.delivery_tag)
        if path is None:
            return  # already settled, or claimed by the process we were forked from
        key = os.path.basename(os.path.dirname(path))
        _return_to_queue(self._layout, path, self._fsync)
        self._batches.pop(key, None)  # relist so it is next again

    # -- crash recovery

    def _recover(self, force: bool = False) -> None:
        owner = _owner(self._layout)
        now = time.monotonic()
        if not force and now - owner.last_scan < self._recovery_interval:
            return
        if not owner.scan_lock.acquire(blocking=False):
            return  # another thread of this process is scanning
        try:
            owner.last_scan = now
            if recover_dead_owners(self._layout, owner.id, self._fsync):
                self._batches.clear()
        finally:
            owner.scan_lock.release()

    def _maybe_recover(self) -> None:
        self._recover(force=False)

    # -- queues

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        self._layout.queue_dir(queue).mkdir(parents=True, exist_ok=True)

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return self._layout.queue_dir(queue).is_dir()

    def _size(self, queue: str) -> int:
        try:
            names = os.listdir(self._layout.queue_dir(queue))
        except FileNotFoundError:
            return 0
        return sum(1 for n in names if n.endswith(MSG_SUFFIX))

    def _purge(self, queue: str) -> int:
        """Remove all ready messages of ``queue`` (claimed ones are not ready)."""
        qdir = self._layout.queue_dir(queue)
        self._batches.pop(qdir.name, None)
        try:
            names = os.listdir(qdir)
        except FileNotFoundError:
            return 0
        count = 0
        for name in names:
            if name.endswith(MSG_SUFFIX):
                try:
                    os.unlink(qdir / name)
                except FileNotFoundError:
                    continue  # claimed meanwhile
                count += 1
        return count

    def _drop_queue(self, queue: str) -> None:
        qdir = self._layout.queue_dir(queue)
        self._batches.pop(qdir.name, None)
        grave = self._layout.tmp / f"{uuid.uuid4().hex}.deleted"
        try:
            # One atomic step: consumers stop seeing it, publishers start a fresh folder.
            os.rename(qdir, grave)
        except FileNotFoundError:
            return
        shutil.rmtree(grave, ignore_errors=True)

    def _delete(
        self, queue: str, exchange: str, routing_key: str, pattern: str, *args: Any, **kwargs: Any
    ) -> None:
        row = Row(routing_key or "", pattern or "", queue or "")
        self._rewrite_table(
            self._exchange_file(exchange), lambda rows: [r for r in rows if r != row]
        )
        self._drop_queue(queue)

    def queue_delete(
        self, queue: str, if_unused: bool = False, if_empty: bool = False, **kwargs: Any
    ) -> None:
        if if_empty and self._size(queue):
            return
        super().queue_delete(queue, if_unused=if_unused, if_empty=False, **kwargs)
        # Bindings made by other processes are not in our memory, and a queue without
        # bindings never reaches _delete: finish the job on disk.
        for table in sorted(self._layout.control.glob("*.exchange")):
            self._rewrite_table(table, lambda rows: [r for r in rows if r.queue != queue])
        self._drop_queue(queue)

    # -- exchanges and bindings

    def get_table(self, exchange: str) -> list[Row]:
        """Bindings of ``exchange``, read under a shared lock (empty file = no bindings)."""
        file = self._exchange_file(exchange)
        try:
            with open(file, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH)
                raw = f.read()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        return [Row(*r) for r in loads(raw)] if raw.strip() else []

    def _rewrite_table(self, file: Path, change: Callable[[list[Row]], list[Row]]) -> None:
        """Read-modify-write a binding table under an exclusive lock.

        Opened without truncation and locked before reading: unlike the parent's
        ``open('wb')``, nothing is lost or torn when processes bind at the same time.
        """
        try:
            fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        with os.fdopen(fd, "r+b") as f:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
            raw = f.read()
            rows = [Row(*r) for r in loads(raw)] if raw.strip() else []
            new = change(rows)
            if new != rows:
                f.seek(0)
                f.write(dumps(new).encode())
                f.truncate()
                f.flush()

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str | None, queue: str) -> None:
        row = Row(routing_key or "", pattern or "", queue or "")
        self._rewrite_table(
            self._exchange_file(exchange), lambda rows: rows if row in rows else [row, *rows]
        )

    def queue_bind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str = "",
        arguments: Any = None,
        **kwargs: Any,
    ) -> None:
        exchange = exchange or "amq.direct"
        self._load_exchange(exchange)  # may have been declared by another process
        if self.state.has_binding(queue, exchange, routing_key):
            # Known here, but another process may have deleted the queue and its binding.
            meta = self.typeof(exchange).prepare_bind(queue, exchange, routing_key, arguments)
            self._queue_bind(exchange, *meta)
            return
        super().queue_bind(queue, exchange, routing_key, arguments, **kwargs)

    def queue_unbind(
        self,
        queue: str,
        exchange: str | None = None,
        routing_key: str = "",
        arguments: Any = None,
        **kwargs: Any,
    ) -> None:
        exchange = exchange or "amq.direct"
        # The parent edits a copy of the table that get_table returned; persist it.
        super().queue_unbind(queue, exchange, routing_key, arguments, **kwargs)
        rk, pattern, q = self.typeof(exchange).prepare_bind(queue, exchange, routing_key, arguments)
        row = Row(rk or "", pattern or "", q or "")
        self._rewrite_table(
            self._exchange_file(exchange), lambda rows: [r for r in rows if r != row]
        )

    def _load_exchange(self, exchange: str) -> None:
        """Learn an exchange another process declared (the parent keeps types in memory)."""
        if exchange in self.state.exchanges or not self._is_valid_exchange_name(exchange):
            return
        try:
            meta = loads(self._exchange_meta_file(exchange).read_bytes())
        except (FileNotFoundError, ValueError):
            return
        meta["table"] = []
        self.state.exchanges.setdefault(exchange, meta)

    def typeof(self, exchange: str, default: str = "direct") -> Any:
        self._load_exchange(exchange)
        return super().typeof(exchange, default)

    def exchange_declare(
        self,
        exchange: str | None = None,
        type: str = "direct",
        durable: bool = False,
        auto_delete: bool = False,
        arguments: Any = None,
        nowait: bool = False,
        passive: bool = False,
    ) -> None:
        name = exchange or f"amq.{type or 'direct'}"
        self._load_exchange(name)  # so passive and equivalence checks see other processes
        super().exchange_declare(exchange, type, durable, auto_delete, arguments, nowait, passive)
        meta_file = self._exchange_meta_file(name)
        if not passive and not meta_file.exists():
            meta = dict(self.state.exchanges[name])
            meta.pop("table", None)
            tmp = _write_tmp(self._layout, dumps(meta).encode(), self._fsync)
            os.rename(tmp, meta_file)

    def exchange_delete(self, exchange: str, if_unused: bool = False, nowait: bool = False) -> None:
        super().exchange_delete(exchange, if_unused=if_unused, nowait=nowait)
        _unlink_quiet(self._exchange_meta_file(exchange))
        # Emptied, not unlinked: a binder holding the old file open would write into the void.
        self._rewrite_table(self._exchange_file(exchange), lambda rows: [])

    def close(self) -> None:
        super().close()  # restores unacked messages through _restore
        self._batches.clear()


# --- transport ----------------------------------------------------------------------------


class Transport(filesystem.Transport):
    """The ``sfs://`` transport; see the module docstring."""

    Channel = Channel

    polling_interval = 0.05
    default_port = 0
    driver_type = "sfs"
    driver_name = "sfs"

    implements = virtual.Transport.implements.extend(
        asynchronous=False,
        exchange_type=frozenset(["direct", "topic", "fanout"]),
    )

    #: One BrokerState per root (the parent shares one across every folder in a process).
    _states: ClassVar[dict[Path, virtual.BrokerState]] = {}

    def __init__(self, client: Any, **kwargs: Any) -> None:
        options = client.transport_options
        root = options.get("root")
        if not root:
            raise ValueError("the sfs transport needs transport_options={'root': <folder>}")
        self.layout = Layout(Path(os.path.abspath(os.fspath(root))))
        self.layout.create()
        self.claims = _Claims()
        self.fsync = bool(options.get("fsync", True))
        self.recovery_interval = float(options.get("recovery_interval", 2.0))
        super().__init__(client, **kwargs)
        self.state = self._states.setdefault(self.layout.root, virtual.BrokerState())

    @property
    def default_connection_params(self) -> dict[str, Any]:
        # There is no host; the parent's default 'localhost' only earns a logged warning.
        return {"port": self.default_port}

    def driver_version(self) -> str:
        return "1"
