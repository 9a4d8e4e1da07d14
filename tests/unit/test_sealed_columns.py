"""``servicemonth keys rotate`` re-seals every column that holds sealed values: a new
``*_sealed`` column in any service's models cannot be forgotten by the rotation."""

from __future__ import annotations

from services import registry
from services.keys import sealed_columns
from shared.config import SERVICES

#: Sealed values in columns whose name does not say so.
NAMED_OTHERWISE = {
    ("registration", "rosters", "content"),  # the uploaded file, until imported
    ("notify", "notifications", "params"),  # a sign-in code, code_sealed
}


def test_every_sealed_column_of_every_service_is_re_sealed_by_the_rotation() -> None:
    covered = {(s, c.table, c.column) for s, cols in sealed_columns().items() for c in cols}
    found = {
        (service, table.name, column.name)
        for service in SERVICES
        for table in registry.metadata(service).tables.values()
        for column in table.columns
        if "sealed" in column.name
    }

    assert found - covered == set()
    assert NAMED_OTHERWISE - covered == set()
    assert {(s, "outbox", "body") for s in SERVICES} <= covered  # events yet to publish


def test_the_rotation_names_only_columns_that_exist() -> None:
    for service, cols in sealed_columns().items():
        tables = registry.metadata(service).tables
        for col in cols:
            assert col.column in tables[col.table].columns, (service, col)
