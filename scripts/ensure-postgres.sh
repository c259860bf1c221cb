#!/usr/bin/env bash
# Make sure the native PostgreSQL 15 binaries used by the tests are installed
# (/usr/lib/postgresql/15/bin/{postgres,initdb,pg_ctl,psql}), without leaving
# the Debian default cluster running.
#
# Usage: scripts/ensure-postgres.sh [--debootstrap]
#   --debootstrap   also make sure debootstrap is installed
#                   (needed by scripts/build-test-image.sh; same as DEVENV_WANT_DEBOOTSTRAP=1)
#
# Idempotent: does nothing when everything is already present.
set -euo pipefail

log() { printf 'ensure-postgres: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
want_debootstrap=${DEVENV_WANT_DEBOOTSTRAP:-0}

for arg in "$@"; do
    case $arg in
        --debootstrap) want_debootstrap=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg" ;;
    esac
done

pkgs=()
[ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/psql" ] \
    || pkgs+=("postgresql-$PG_MAJOR")
if [ "$want_debootstrap" = 1 ] && ! command -v debootstrap >/dev/null 2>&1 \
    && [ ! -x /usr/sbin/debootstrap ]; then
    pkgs+=(debootstrap)
fi

if [ "${#pkgs[@]}" -eq 0 ]; then
    log "ok: $("$PG_BIN/postgres" --version)"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${pkgs[*]}"

export DEBIAN_FRONTEND=noninteractive
# Refresh package lists only when apt does not know an installation candidate.
need_update=0
for p in "${pkgs[@]}"; do
    apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]' || need_update=1
done
[ "$need_update" = 0 ] || apt-get update -q

installing_pg=0
case " ${pkgs[*]} " in *" postgresql-$PG_MAJOR "*) installing_pg=1 ;; esac

log "installing: ${pkgs[*]}"
apt-get install -y -q "${pkgs[@]}"

if [ "$installing_pg" = 1 ]; then
    # The Debian package creates and (where it can) starts a default cluster
    # on port 5432.  The tests run their own servers: stop it and keep it
    # from being started automatically again.
    if command -v pg_lsclusters >/dev/null 2>&1; then
        while read -r ver name _port status _rest; do
            [ "$ver" = "$PG_MAJOR" ] || continue
            case $status in
                online*)
                    log "stopping Debian cluster $ver/$name"
                    pg_ctlcluster "$ver" "$name" stop || log "warning: could not stop cluster $ver/$name"
                    ;;
            esac
            if [ -f "/etc/postgresql/$ver/$name/start.conf" ]; then
                echo manual >"/etc/postgresql/$ver/$name/start.conf"
            fi
        done < <(pg_lsclusters --no-header 2>/dev/null || true)
    fi
fi

[ -x "$PG_BIN/postgres" ] || die "$PG_BIN/postgres still missing after install"
log "ok: $("$PG_BIN/postgres" --version)"
