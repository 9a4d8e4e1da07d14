"""``servicemonth pii-scan``: personal data in clear anywhere the deployment keeps things.

ID numbers and mobiles are sealed at rest and masked wherever they are shown (PIPL); this
command checks it. It reads every file under ``$SERVICEMONTH_HOME`` (and the paths given):
logs and JSON lines, CSV, HTML, the embedded broker's messages (their base64 bodies
decoded), the file outbox (e-mails decoded part by part), xlsx and other zip files (their
XML parts), gzip files and the text chunks of PNG images; and a dump of each service's
database, every column of every table (outbox and event log included, base64 values
decoded), on SQLite and PostgreSQL alike. What it finds it prints masked, with where, and
it exits 1 when anything was found.

Tight patterns, so that a clean deployment reads zero: an ID number is 18 characters with
the right GB 11643 check character and a real birth date (or 15 digits with a real region
code and birth date), a mobile an allocated mainland number (:func:`shared.pii.mobile`),
neither inside a longer run of letters or digits (hex digests, UUIDs, timestamps, sealed
values) nor the decimals of a number. Part of the composition root: it reads every
service's database.
"""

from __future__ import annotations

import base64
import binascii
import email
import gzip
import io
import json
import re
import struct
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import click
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.engine import Engine, make_url
from stdnum import numdb
from stdnum.cn import ric

from shared.config import SERVICES, settings
from shared.pii import _ID as ID_CANDIDATE  # the patterns redact() masks with
from shared.pii import _MOBILE as MOBILE_CANDIDATE
from shared.pii import mask_id_number, mask_phone, mobile

ID_NUMBER = "ID number"
MOBILE = "mobile"

#: Bytes a file must start with to be read as such.
SQLITE = b"SQLite format 3\x00"
ZIP = b"PK\x03\x04"
GZIP = b"\x1f\x8b"
PNG = b"\x89PNG\r\n\x1a\n"
#: Members of a zip file read as text (xlsx: sharedStrings, sheets; docx, odt alike).
TEXT_MEMBER = re.compile(r"\.(xml|rels|txt|csv|json|jsonl|html?|md)$", re.IGNORECASE)
#: A run that may be base64 (standard or URL-safe): decoded and read when it is text.
BASE64 = re.compile(r"[A-Za-z0-9+/_-]{20,}={0,2}")
#: Decompressed or decoded content read at most (a zip bomb stops here).
MAX_BYTES = 256 * 1024 * 1024
_ALNUM = re.compile(r"[0-9A-Za-z]")


# --- what counts as an ID number or a mobile -----------------------------------------------


def _birth_date(year: int, month: int, day: int) -> bool:
    try:
        born = date(year, month, day)
    except ValueError:
        return False
    return 1900 <= born.year <= 2100


def is_id_number(value: str) -> bool:
    """An 18-character ID number with its GB 11643 check character and a real birth date,
    or an old 15-digit one with a real region code and birth date."""
    value = value.upper()
    if len(value) == 18:
        return (
            value[:17].isdigit()
            and ric.calc_check_digit(value) == value[17]
            and _birth_date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
        )
    if len(value) == 15 and value.isdigit():
        region = numdb.get("cn/loc").info(value[:6])
        return (
            len(region) == 2
            and "county" in region[-1][1]
            and _birth_date(1900 + int(value[6:8]), int(value[8:10]), int(value[10:12]))
        )
    return False


def is_mobile(value: str) -> bool:
    """An allocated 11-digit mainland mobile (separators and +86 allowed)."""
    try:
        mobile(value)
    except ValueError:
        return False
    return True


def _alone(text: str, start: int, end: int) -> bool:
    """The match is not part of a longer token: no letter or digit touches it (hex digests,
    UUIDs, base64, timestamps), and it is not the decimals of a number (``0.138…``)."""
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    if _ALNUM.fullmatch(before) or _ALNUM.fullmatch(after):
        return False
    return not (before == "." and start > 1 and text[start - 2].isdigit())


def find(text: str) -> Iterator[tuple[str, str]]:
    """``(kind, masked value)`` for every ID number and mobile in clear in ``text``."""
    if not any(c.isdigit() for c in text):
        return
    text = unicodedata.normalize("NFKC", text)  # full-width digits count too
    taken: list[tuple[int, int]] = []
    for m in ID_CANDIDATE.finditer(text):
        if _alone(text, m.start(1), m.end(1)) and is_id_number(m[1]):
            taken.append(m.span(1))
            yield ID_NUMBER, mask_id_number(m[1].upper())
    for m in MOBILE_CANDIDATE.finditer(text):
        if any(s < m.end() and m.start() < e for s, e in taken):
            continue
        if _alone(text, m.start(), m.end()) and is_mobile(m[1]):
            yield MOBILE, mask_phone(re.sub(r"[\s-]", "", m[1]))


def find_encoded(text: str) -> Iterator[tuple[str, str]]:
    """:func:`find` in ``text`` and in the text its base64 runs decode to (a broker
    message's body, a JSON value); sealed values decode to ciphertext, which is skipped."""
    yield from find(text)
    for token in BASE64.findall(text):
        decoded = _base64_text(token)
        if decoded is not None:
            yield from find_encoded(decoded)


def _base64_text(token: str) -> str | None:
    raw = token.rstrip("=")
    if len(raw) % 4 == 1:
        return None
    padded = raw + "=" * (-len(raw) % 4)
    try:
        data = (
            base64.urlsafe_b64decode(padded)
            if "-" in raw or "_" in raw
            else base64.b64decode(padded, validate=True)
        )
        decoded = data.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    printable = sum(c.isprintable() or c in "\r\n\t" for c in decoded)
    return decoded if decoded and printable == len(decoded) else None


# --- where it looks ------------------------------------------------------------------------


@dataclass
class Found:
    """What one place (a file, a table) holds in clear."""

    place: str
    items: list[tuple[str, str, str]] = field(default_factory=list)  # where, kind, masked

    def add(self, where: str, text: str) -> None:
        self.items.extend((where, kind, masked) for kind, masked in find_encoded(text))


@dataclass
class Scan:
    """What a scan read and found."""

    found: list[Found] = field(default_factory=list)
    places: int = 0
    skipped: list[str] = field(default_factory=list)  # binary or unreadable, with why

    @property
    def counts(self) -> Counter[str]:
        return Counter(kind for f in self.found for _, kind, _ in f.items)

    def keep(self, found: Found) -> None:
        self.places += 1
        if found.items:
            self.found.append(found)


def scan_bytes(data: bytes, name: str, found: Found, scan: Scan) -> None:
    """Read ``data`` (the file ``name``, or a part of one) by what it is."""
    if data.startswith(ZIP):
        _scan_zip(data, name, found, scan)
    elif data.startswith(GZIP):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as inner:
                scan_bytes(inner.read(MAX_BYTES), name, found, scan)
        except (OSError, EOFError) as exc:
            scan.skipped.append(f"{name}: not read ({type(exc).__name__})")
    elif data.startswith(PNG):
        for number, text in enumerate(png_text(data), start=1):
            found.add(f"{name} text chunk {number}", text)
    elif name.lower().endswith(".eml"):
        _scan_email(data, name, found, scan)
    elif b"\x00" in data[:8192]:
        scan.skipped.append(f"{name}: binary")
    else:
        _scan_lines(data.decode("utf-8", errors="replace").splitlines(), name, found)


def _scan_lines(lines: Iterable[str], name: str, found: Found) -> None:
    for number, line in enumerate(lines, start=1):
        found.add(f"{name} line {number}", line)


def _scan_zip(data: bytes, name: str, found: Found, scan: Scan) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.infolist():
                if member.is_dir() or member.file_size > MAX_BYTES:
                    continue
                inner = archive.read(member)
                if TEXT_MEMBER.search(member.filename) or inner[:4] in (ZIP, GZIP):
                    scan_bytes(inner, f"{name}:{member.filename}", found, scan)
    except (zipfile.BadZipFile, OSError, zlib.error) as exc:
        scan.skipped.append(f"{name}: not read ({type(exc).__name__})")


def _scan_email(data: bytes, name: str, found: Found, scan: Scan) -> None:
    """An e-mail: its headers, its text parts decoded, its attachments read as files."""
    message = email.message_from_bytes(data)
    for header, value in message.items():
        found.add(f"{name} header {header}", str(value))
    for number, part in enumerate(message.walk(), start=1):
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        where = f"{name} part {number}"
        if part.get_content_maintype() == "text":
            text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
            _scan_lines(text.splitlines(), where, found)
        else:  # an attachment: a report's workbook, a chart
            scan_bytes(payload, f"{where} ({part.get_filename() or 'attachment'})", found, scan)


def png_text(data: bytes) -> Iterator[str]:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG image."""
    at = len(PNG)
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        at += 12 + length
        try:
            if kind == b"tEXt":
                yield body.decode("latin-1")
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\x00")
                yield key.decode("latin-1") + " " + zlib.decompress(rest[1:]).decode("latin-1")
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\x00")
                compressed, rest = rest[0], rest[2:]
                _, _, rest = rest.partition(b"\x00")  # language
                _, _, text = rest.partition(b"\x00")  # translated keyword
                text = zlib.decompress(text) if compressed else text
                yield key.decode("latin-1") + " " + text.decode("utf-8", errors="replace")
        except (zlib.error, IndexError):
            continue


def scan_file(path: Path, shown: str, scan: Scan) -> None:
    found = Found(f"file {shown}")
    try:
        with path.open("rb") as file:
            head = file.read(16)
            if head.startswith(SQLITE):
                file.close()
                scan_database(_sqlite_engine(path), f"database file {shown}", scan)
                return
            if not head.startswith((ZIP, GZIP, PNG)) and not path.name.endswith(".eml"):
                file.seek(0)
                if b"\x00" in file.read(8192):
                    scan.skipped.append(f"{shown}: binary")
                    return
                file.seek(0)
                text = io.TextIOWrapper(file, encoding="utf-8", errors="replace")
                _scan_lines(text, shown, found)
            else:
                file.seek(0)
                scan_bytes(file.read(MAX_BYTES), shown, found, scan)
    except FileNotFoundError:
        return  # gone meanwhile: a message taken off its queue, a log rotated
    except OSError as exc:
        scan.skipped.append(f"{shown}: not read ({type(exc).__name__})")
        return
    scan.keep(found)


def _sqlite_engine(path: Path) -> Engine:
    return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")


def scan_database(engine: Engine, place: str, scan: Scan) -> None:
    """Every value of every table, as a dump would hold it: text as it is, bytes by what
    they are (a kept report's xlsx is read as a workbook), numbers as digits."""
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            found = Found(f"{place}: table {table.name}")
            key = list(table.primary_key.columns)
            query = select(table).execution_options(yield_per=1000, stream_results=True)
            for number, row in enumerate(conn.execute(query), start=1):
                values = row._mapping
                ident = "/".join(str(values[c.name]) for c in key) if key else ""
                at = f"row {number}" + (f" ({ident})" if ident and not list(find(ident)) else "")
                for column, value in values.items():
                    where = f"{column}, {at}"
                    if isinstance(value, bytes | bytearray | memoryview):
                        scan_bytes(bytes(value), where, found, scan)
                    elif isinstance(value, dict | list):
                        found.add(where, json.dumps(value, ensure_ascii=False))
                    elif value is not None:
                        found.add(where, str(value))
            scan.keep(found)


def _database_files(service_urls: dict[str, str]) -> set[Path]:
    """The SQLite files (and their journals) the services' dumps already read."""
    files: set[Path] = set()
    for url in service_urls.values():
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            path = Path(parsed.database).resolve()
            files |= {path, *(Path(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))}
    return files


def run(roots: Iterable[Path], databases: dict[str, Engine] | None = None) -> Scan:
    """Scan the files under ``roots`` and the ``databases`` (by service name)."""
    scan = Scan()
    databases = databases or {}
    skip = _database_files({s: str(e.url) for s, e in databases.items()})
    for service, engine in databases.items():
        scan_database(engine, f"{service} database", scan)
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if path.resolve() in skip or path.is_symlink():
                continue
            shown = str(path.relative_to(root)) if path != root else str(path)
            scan_file(path, shown if root.is_file() else f"{root.name}/{shown}", scan)
    return scan


def report_lines(scan: Scan, show: int) -> list[str]:
    """The scan for people: per place, what was found (masked) and where; then the total."""
    lines: list[str] = []
    for found in scan.found:
        kinds = Counter(kind for _, kind, _ in found.items)
        said = ", ".join(f"{n} {kind}{'s' if n > 1 else ''}" for kind, n in sorted(kinds.items()))
        lines.append(f"{found.place}: {said} in clear")
        lines += [f"  {where}: {kind} {masked}" for where, kind, masked in found.items[:show]]
        if len(found.items) > show:
            lines.append(f"  … and {len(found.items) - show} more")
    counts = scan.counts
    lines.append(
        f"total: {counts[ID_NUMBER]} ID numbers, {counts[MOBILE]} mobiles in clear "
        f"in {scan.places} places scanned ({len(scan.skipped)} files skipped as binary "
        "or unreadable)"
    )
    return lines


@click.command("pii-scan")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--databases/--no-databases",
    default=True,
    show_default=True,
    help="Also dump and read each service's database.",
)
@click.option("--show", default=5, show_default=True, help="Findings listed per place.")
@click.option("--skipped", "list_skipped", is_flag=True, help="List the files not read.")
def pii_scan(paths: tuple[Path, ...], databases: bool, show: int, list_skipped: bool) -> None:
    """Look for ID numbers and mobiles in clear in SERVICEMONTH_HOME (logs, reports, exports,
    the broker's folders, the outbox), in the PATHS given (a log folder, downloads) and in
    every service's database. Prints each place with what it holds, masked, and a total;
    exits 1 when anything was found."""
    from services import registry

    home = settings().home
    engines: dict[str, Any] = {}
    if databases:
        engines = {s: registry.runtime(s).db.engine for s in SERVICES}
    roots = [home, *(p for p in paths if p.resolve() != home.resolve())]
    scan = run([r for r in roots if r.exists()], engines)
    for line in report_lines(scan, show):
        click.echo(line)
    if list_skipped:
        for line in scan.skipped:
            click.echo(f"  skipped {line}")
    if scan.found:
        raise SystemExit(1)
