#!/usr/bin/env bash
# Install (Debian's package) and start a PostgreSQL server on loopback for the distributed
# tuning test, and print the URL the test reads from CR_BENCH_TEST_POSTGRES.
# Prints nothing (and the test skips, saying why) where the server cannot be had.
set -uo pipefail
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || exit 0
    else
        exit 0
    fi
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
# Debian's cluster listens on localhost only (listen_addresses = 'localhost').
pg_lsclusters -h 2>/dev/null | grep -q "^$version main" || pg_createcluster "$version" main >&2 || exit 0
pg_ctlcluster "$version" main start >&2 2>/dev/null || pg_lsclusters -h | grep -q "$version main .* online" || exit 0
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
su postgres -c "psql -q -p $port -c \"DROP DATABASE IF EXISTS crbench_test\"" >&2 || exit 0
su postgres -c "psql -q -p $port -c \"DO \\\$\\\$ BEGIN CREATE ROLE crbench LOGIN PASSWORD 'crbench'; EXCEPTION WHEN duplicate_object THEN NULL; END \\\$\\\$\"" >&2 || exit 0
su postgres -c "createdb -p $port -O crbench crbench_test" >&2 || exit 0
echo "postgresql://crbench:crbench@127.0.0.1:$port/crbench_test"  # the README's form (psycopg 3, the cluster extra)
