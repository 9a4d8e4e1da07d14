#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into four databases: BASE_registration,
# BASE_pairing, BASE_notify and BASE_reporting.
#
#   scripts/restore.sh DIR BASE             into new databases (refused if any exists)
#   scripts/restore.sh --replace DIR BASE   drop those that exist first
#
# DIR   a folder backup.sh made; its checksums are verified before anything changes
# BASE  the base name to restore under: the deployment's own (with its processes
#       stopped), or a new one for a drill (servicemonth_410303_drill)
#
# The tables come back owned by the role restoring them (libpq's PGHOST, PGPORT, PGUSER,
# PGPASSWORD: the superuser) and without grants. Where each service runs as its own role,
# run the deployment's postgres-roles.sql (`servicemonth deploy postgres-roles --base
# BASE`) afterwards: it hands each database and its tables to the service's role. PG_CLIENT
# goes before each command as in backup.sh (the dumps travel on standard input, so a
# container's client works). See deploy/README.md, "Backup and a restore drill".
set -euo pipefail

SERVICES=(registration pairing notify reporting)

usage() {
    echo "usage: $0 [--replace] DIR BASE" >&2
    exit 2
}

replace=no
if [ "${1:-}" = --replace ]; then
    replace=yes
    shift
fi
[ $# -eq 2 ] || usage
dir=${1%/}
base=$2
if ! [[ $base =~ ^[a-z_][a-z0-9_]{0,49}$ ]]; then
    echo "restore: BASE must be lower-case letters, digits and _ (got '$base')" >&2
    exit 2
fi
for service in "${SERVICES[@]}"; do
    if [ ! -f "$dir/$service.dump" ]; then
        echo "restore: $dir/$service.dump is missing: not a backup made by backup.sh" >&2
        exit 1
    fi
done
if ! (cd "$dir" && sha256sum --check --quiet SHA256SUMS); then
    echo "restore: $dir fails its checksums (SHA256SUMS); nothing restored" >&2
    exit 1
fi

read -r -a client <<<"${PG_CLIENT:-}"
connection=()
[ -n "${PGHOST:-}" ] && connection+=(-h "$PGHOST")
[ -n "${PGPORT:-}" ] && connection+=(-p "$PGPORT")
[ -n "${PGUSER:-}" ] && connection+=(-U "$PGUSER")

sql() {
    "${client[@]}" psql "${connection[@]}" --no-password --no-psqlrc -X -q -At \
        -v ON_ERROR_STOP=1 -d postgres -c "$1"
}

existing=()
for service in "${SERVICES[@]}"; do
    database=${base}_$service
    if [ -n "$(sql "SELECT 1 FROM pg_database WHERE datname = '$database'")" ]; then
        existing+=("$database")
    fi
done
if [ ${#existing[@]} -gt 0 ] && [ $replace = no ]; then
    echo "restore: ${existing[*]} exist; nothing restored." >&2
    echo "  Restore under a new BASE, or stop the deployment's processes and pass --replace." >&2
    exit 1
fi

for service in "${SERVICES[@]}"; do
    database=${base}_$service
    if [ $replace = yes ]; then
        # No FORCE: a process still connected makes this fail, which is the point.
        sql "DROP DATABASE IF EXISTS \"$database\""
    fi
    sql "CREATE DATABASE \"$database\""
    echo "restore: $database"
    "${client[@]}" pg_restore "${connection[@]}" --no-password --no-owner --no-acl \
        --exit-on-error --single-transaction -d "$database" <"$dir/$service.dump"
done
echo "restore: $dir restored under $base"
