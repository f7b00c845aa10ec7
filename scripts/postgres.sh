#!/usr/bin/env bash
# Start a local PostgreSQL server for the multi-host tests and print its URL.
# Installs Debian's postgresql when it is missing and we may (root with apt-get). Prints nothing and
# exits 0 when no server can be had: the tests that need it then skip and say why.
#
# Called as `URL=$(bash scripts/postgres.sh)`: the server outlives this script, so whatever may start it
# (apt-get's postinst, pg_ctlcluster) runs `detached`, holding none of our descriptors. A server that kept
# the write end of that pipe made the command substitution wait for ever (CI timed out at 90 min).
set -uo pipefail
exec 3>&1 1>&2
log=$(mktemp /tmp/nasplay-postgres.XXXXXX.log)
trap 'rm -f "$log"' EXIT

detached() {
    (
        for fd in $(ls "/proc/$BASHPID/fd"); do
            [ "$fd" -gt 2 ] && eval "exec $fd>&-"
        done
        exec "$@" </dev/null >>"$log" 2>&1
    )
}

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        { detached apt-get update -qq && detached apt-get install -y -qq postgresql; } \
            || { echo "postgres.sh: could not install postgresql:"; tail -20 "$log"; exit 0; }
    else
        echo "postgres.sh: PostgreSQL is not installed and cannot be installed here"; exit 0
    fi
fi
url="postgresql://nasplay:nasplay-test@127.0.0.1:5432/nasplay_test"
if [ "$(id -u)" != 0 ]; then  # setting a server up takes root (su postgres); use one that is set up already
    if PGPASSWORD=nasplay-test PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -U nasplay -d nasplay_test -qtAc 'select 1' \
            </dev/null >/dev/null 2>&1; then
        echo "$url" >&3
    else
        echo "postgres.sh: no server on 127.0.0.1:5432 with role nasplay and database nasplay_test, and only root sets one up"
    fi
    exit 0
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
online() { pg_lsclusters -h 2>/dev/null | grep -q "^$ver main [0-9]* online"; }
pg_lsclusters -h 2>/dev/null | grep -q "^$ver main" || detached pg_createcluster "$ver" main
online || detached pg_ctlcluster "$ver" main start || online \
    || { echo "postgres.sh: pg_ctlcluster $ver main start failed:"; tail -20 "$log"; exit 0; }
for _ in $(seq 1 30); do
    su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
    sleep 0.5
done
su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='nasplay'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"create role nasplay login password 'nasplay-test'\"" >/dev/null
su postgres -c "psql -qtAc \"select 1 from pg_database where datname='nasplay_test'\"" | grep -q 1 \
    || su postgres -c "createdb -O nasplay nasplay_test" >/dev/null
echo "$url" >&3
