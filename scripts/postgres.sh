#!/usr/bin/env bash
# Start a local PostgreSQL server for the multi-host tests and print its URL.
# Installs Debian's postgresql when it is missing and we may (root with apt-get). Prints nothing and
# exits 0 when no server can be had: the tests that need it then skip and say why.
set -uo pipefail
exec 3>&1 1>&2
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
            || { echo "postgres.sh: could not install postgresql"; exit 0; }
    else
        echo "postgres.sh: PostgreSQL is not installed and cannot be installed here"; exit 0
    fi
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_lsclusters -h 2>/dev/null | grep -q "^$ver main" || pg_createcluster "$ver" main >/dev/null
pg_ctlcluster "$ver" main start 2>/dev/null || true
for _ in $(seq 1 30); do
    su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
    sleep 0.5
done
su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='nasplay'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"create role nasplay login password 'nasplay-test'\"" >/dev/null
su postgres -c "psql -qtAc \"select 1 from pg_database where datname='nasplay_test'\"" | grep -q 1 \
    || su postgres -c "createdb -O nasplay nasplay_test" >/dev/null
echo "postgresql://nasplay:nasplay-test@127.0.0.1:5432/nasplay_test" >&3
