#!/bin/sh
# Regenerate SERVICE's single initial migration (0001) from its models.
# For the project's first release only: while no deployment has run 0001, its schema is
# rewritten rather than stacked with further revisions. Usage: scripts/regen-migration.sh notify
set -eu
svc="$1"
tmp=$(mktemp -d)
rm -f services/"$svc"/migrations/versions/0001_*.py
.venv/bin/python - "$svc" "$tmp" <<'PY'
import importlib, sys
from alembic import command
from shared.db import Database
from shared.migrations import alembic_config
svc, tmp = sys.argv[1], sys.argv[2]
base = importlib.import_module(f"services.{svc}.models").Base
db = Database(f"sqlite:///{tmp}/{svc}.db", base.metadata)
command.revision(alembic_config(svc, db), message=f"initial {svc} schema", autogenerate=True, rev_id="0001")
PY
sed -i '/^Create Date/d' services/"$svc"/migrations/versions/0001_*.py
rm -rf "$tmp"
ls services/"$svc"/migrations/versions/
