#!/usr/bin/env bash
# Install Debian's PostgreSQL server and Redis for `make run-cluster` / `make test-cluster` (needs root
# or sudo); does nothing when both are already there (initdb/pg_ctl and redis-server found).
set -euo pipefail
have_pg() { command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
have_redis() { command -v redis-server >/dev/null; }
if have_pg && have_redis; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
pkgs=()
have_pg || pkgs+=(postgresql)
have_redis || pkgs+=(redis-server)
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
have_pg && have_redis
