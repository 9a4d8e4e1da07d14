#!/usr/bin/env bash
# Back up one deployment's four service databases: a pg_dump (custom format) of each.
#
#   scripts/backup.sh BASE DIR
#
# BASE  the databases' base name: BASE_registration, BASE_pairing, BASE_notify and
#       BASE_reporting (the database named in SERVICEMONTH_DATABASE_URL, or the
#       --base given to `servicemonth deploy postgres-roles`: servicemonth_410303)
# DIR   the folder to make (an existing one is refused): registration.dump,
#       pairing.dump, notify.dump, reporting.dump, MANIFEST and SHA256SUMS. The dumps
#       are written to DIR.partial first and renamed when all four are done, so a DIR
#       that exists is a whole backup.
#
# PostgreSQL is reached as libpq says (PGHOST, PGPORT, PGUSER, PGPASSWORD, ~/.pgpass), by
# a role that reads all four databases (the superuser). PG_CLIENT, when set, goes before
# each command; the deployment's own postgres container, for example:
#   PGUSER=servicemonth PG_CLIENT="docker compose -p servicemonth-410303 exec -T postgres" \
#     scripts/backup.sh servicemonth_410303 /srv/backups/410303/$(date +%F)
# Restore with scripts/restore.sh (deploy/README.md, "Backup and a restore drill").
set -euo pipefail

SERVICES=(registration pairing notify reporting)

usage() {
    echo "usage: $0 BASE DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
base=$1
dir=${2%/}
if ! [[ $base =~ ^[a-z_][a-z0-9_]{0,49}$ ]]; then
    echo "backup: BASE must be lower-case letters, digits and _ (got '$base')" >&2
    exit 2
fi
if [ -e "$dir" ]; then
    echo "backup: $dir exists; name a new folder" >&2
    exit 1
fi

read -r -a client <<<"${PG_CLIENT:-}"
connection=()
[ -n "${PGHOST:-}" ] && connection+=(-h "$PGHOST")
[ -n "${PGPORT:-}" ] && connection+=(-p "$PGPORT")
[ -n "${PGUSER:-}" ] && connection+=(-U "$PGUSER")

partial=$dir.partial
rm -rf "$partial"
mkdir -p "$partial"
chmod 700 "$partial" # the dumps hold sealed personal data and the token tables
started=$(date -u +%FT%TZ)
for service in "${SERVICES[@]}"; do
    database=${base}_$service
    echo "backup: $database"
    "${client[@]}" pg_dump "${connection[@]}" --format=custom --no-password \
        "$database" >"$partial/$service.dump"
done
{
    echo "base $base"
    echo "started $started"
    echo "finished $(date -u +%FT%TZ)"
    echo "pg_dump $("${client[@]}" pg_dump --version)"
} >"$partial/MANIFEST"
(cd "$partial" && sha256sum ./*.dump MANIFEST >SHA256SUMS)
mv "$partial" "$dir"
echo "backup: $dir ($(du -sh "$dir" | cut -f1))"
