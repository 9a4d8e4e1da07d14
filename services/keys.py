"""``servicemonth keys …``: the personal-data key's versions and its rotation.

The one place that knows where every service keeps sealed values (so it belongs to the
composition root): :func:`sealed_columns`. ``keys rotate`` seals them again under the newest key,
``keys status`` counts them by key version; see deploy/README.md, "Rotating the
personal-data key". Nothing here prints a value, only counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import click

from shared.config import SERVICES, settings
from shared.events.auth import SignInCodeRequested
from shared.events.members import SealedContact
from shared.pii import lookup_key
from shared.rekey import Outcome, SealedColumn, reseal, versions

_EVENTS = SealedColumn("outbox", "body", "envelope")


def sealed_columns() -> dict[str, tuple[SealedColumn, ...]]:
    """Where each service keeps sealed values: its tables' sealed columns (contexts as the
    services seal under them) and its outbox (events yet to publish, and those it kept)."""
    from services.notify.sign_in import SEALED_CODE
    from services.registration.rosters import FILE_CONTEXT, ROW_CONTEXT

    contact = SealedContact.CONTEXT
    return {
        "registration": (
            SealedColumn("members", "id_number_sealed", context="id_number"),
            SealedColumn("members", "phone_sealed", context="phone"),
            SealedColumn("members", "email_sealed", context="email"),
            SealedColumn("staff_accounts", "phone_sealed", context="phone"),
            SealedColumn("staff_accounts", "email_sealed", context="email"),
            SealedColumn("roster_errors", "row_sealed", context=ROW_CONTEXT),
            SealedColumn("rosters", "content", "bytes", context=FILE_CONTEXT, batch=1),
            _EVENTS,
        ),
        "pairing": (_EVENTS,),
        "notify": (
            SealedColumn("contacts", "sealed", context=contact),
            SealedColumn("staff_contacts", "sealed", context=contact),
            SealedColumn("notifications", "sealed_to", context=contact),
            SealedColumn(
                "notifications",
                "params",
                "json",
                context=SignInCodeRequested.CODE_CONTEXT,
                key=SEALED_CODE,
            ),
            _EVENTS,
        ),
        "reporting": (
            SealedColumn("subscriptions", "contact_sealed", context=contact),
            _EVENTS,  # its event log keeps no contact (event_log.log_event)
        ),
    }


#: Passes over the databases before ``rotate`` gives up on values that keep changing.
PASSES = 3


@click.group("keys")
def keys_commands() -> None:
    """The personal-data key: versions, rotation."""


def _chosen(services: tuple[str, ...]) -> dict[str, tuple[SealedColumn, ...]]:
    """The sealed columns of ``services`` (all four when none is named)."""
    return {s: cols for s, cols in sealed_columns().items() if s in (services or SERVICES)}


@keys_commands.command("status")
@click.argument("services", nargs=-1, type=click.Choice(SERVICES))
def status_command(services: tuple[str, ...]) -> None:
    """How many sealed values each table of SERVICES (default: all four) holds under each
    key version."""
    keys = settings().pii_keys()
    current = keys.current
    known = ", ".join(str(v) for v in sorted(keys.keys))
    click.echo(f"current key version: {current} (configured: {known})")
    for service, table, counts in _tables(_chosen(services)):
        shown = "  ".join(f"v{v}: {n}" for v, n in sorted(counts.items())) or "none"
        old = sum(n for v, n in counts.items() if v != current)
        click.echo(f"{service} {table}: {shown}  (under older keys: {old})")


@keys_commands.command("rotate")
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="Rows re-sealed per transaction.",
)
@click.argument("services", nargs=-1, type=click.Choice(SERVICES))
def rotate_command(batch: int, services: tuple[str, ...]) -> None:
    """Seal every value of SERVICES (default: all four) again under the current key, a
    short transaction per BATCH rows, while the services run. Every process must already
    seal with that key (restart them after adding it), or what they write meanwhile is
    sealed under the old one."""
    from services import registry

    current = settings().pii_keys().current
    click.echo(f"re-sealing under key version {current}, {batch} rows a transaction")
    sealed = _chosen(services)
    done: Counter[tuple[str, str]] = Counter()
    unopened: Counter[tuple[str, str]] = Counter()
    for attempt in range(1, PASSES + 1):
        unopened.clear()
        before = sum(done.values())
        for service, specs in sealed.items():
            rt = registry.runtime(service)
            for spec in specs:
                where = (service, spec.table)
                outcome = reseal(
                    rt.db, spec, rt.sealer, batch=batch, progress=_progress(service, spec)
                )
                done[where] += outcome.resealed
                unopened[where] += outcome.unopened
        still = sum(_left(sealed, current).values())
        if not still or sum(done.values()) == before or attempt == PASSES:
            break
        click.echo(f"pass {attempt}: {still} values changed meanwhile, once more")
    left = _left(sealed, current)
    for service, specs in sealed.items():
        for table in dict.fromkeys(spec.table for spec in specs):
            where = (service, table)
            line = f"{service} {table}: {done[where]} re-sealed, {left[where]} under older keys"
            if unopened[where]:
                line += f" ({unopened[where]} do not open with any configured key)"
            click.echo(line)
    click.echo(f"total: {sum(done.values())} re-sealed, {sum(left.values())} under older keys")
    if sum(left.values()):
        raise SystemExit(1)


@keys_commands.command("lookup-key")
def lookup_key_command() -> None:
    """Print the look-up key (64 hex digits) to set as SERVICEMONTH_PII_LOOKUP_KEY before
    key version 1 is retired. It finds ID numbers and phones again; it opens nothing. Keep
    it as secret as the keys."""
    keys = settings().pii_keys()
    if keys.lookup is not None:
        click.echo(keys.lookup.hex())
    else:
        click.echo(lookup_key(keys.keys[1]).hex())


def _progress(service: str, spec: SealedColumn) -> Callable[[Outcome], None]:
    def report(outcome: Outcome) -> None:
        if outcome.resealed:
            click.echo(
                f"  {service} {spec.table}.{spec.column}: {outcome.resealed} re-sealed so far"
            )

    return report


def _left(sealed: dict[str, tuple[SealedColumn, ...]], current: int) -> Counter[tuple[str, str]]:
    """Values under a key other than ``current``, by (service, table)."""
    left: Counter[tuple[str, str]] = Counter()
    for service, table, counts in _tables(sealed):
        left[(service, table)] = sum(n for v, n in counts.items() if v != current)
    return left


def _tables(
    sealed: dict[str, tuple[SealedColumn, ...]],
) -> list[tuple[str, str, Counter[int]]]:
    """Per (service, table), in order: its sealed values counted by key version."""
    from services import registry

    found: dict[tuple[str, str], Counter[int]] = {}
    for service, specs in sealed.items():
        db = registry.runtime(service).db
        for spec in specs:
            found.setdefault((service, spec.table), Counter()).update(versions(db, spec))
    return [(service, table, counts) for (service, table), counts in found.items()]
