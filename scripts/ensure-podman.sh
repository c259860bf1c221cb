#!/usr/bin/env bash
# Make sure rootful Podman serves the Docker-compatible API, on a Unix socket and on a TCP
# socket on loopback, with the local test images loaded, for the Podman and remote-engine tests
# (tests/engines.rs).
#
#   - `podman` missing                -> apt-get install podman (Debian's 4.3)
#   - the services do not answer      -> start `podman system service --time=0` on
#                                        unix://$DEVENV_PODMAN_SOCK and tcp:$DEVENV_PODMAN_TCP,
#                                        fully detached, and wait (bounded) until both answer
#   - a test image missing or older than docker's copy (label devenv.build-hash)
#                                     -> docker save IMAGE | podman load
#
# Podman's default containers.conf asks for a NOFILE limit above this machine's hard limit
# ("error setting rlimit type 7" at every container start); the services run with
# CONTAINERS_CONF pointing at a file that clears `default_ulimits`.
#
# Usage: scripts/ensure-podman.sh [IMAGE...]   (default: $DEVENV_TEST_IMAGE or
#                                               devenv-test/postgres:13)
# Env:
#   DEVENV_PODMAN_SOCK     Unix socket (default /run/devenv-podman/podman.sock)
#   DEVENV_PODMAN_TCP      TCP address (default 127.0.0.2:23750; loopback only)
#   DEVENV_PODMAN_TIMEOUT  seconds to wait for the services (default 60)
# Idempotent; never stops a service that answers.
set -euo pipefail

log() { printf 'ensure-podman: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SOCK=${DEVENV_PODMAN_SOCK:-/run/devenv-podman/podman.sock}
TCP=${DEVENV_PODMAN_TCP:-127.0.0.2:23750}
TIMEOUT=${DEVENV_PODMAN_TIMEOUT:-60}
CONF_DIR=/etc/devenv
CONF=$CONF_DIR/podman-containers.conf
LOG_DIR=/var/log
if [ $# -gt 0 ]; then
    images=("$@")
else
    images=("${DEVENV_TEST_IMAGE:-devenv-test/postgres:13}")
fi

case ${TCP%:*} in
    127.*) ;;
    *) die "DEVENV_PODMAN_TCP=$TCP is not a loopback address" ;;
esac

if ! command -v podman >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "podman is missing and this is not root (cannot install it)"
    log "installing podman via apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache policy podman 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt-get update -q
    fi
    apt-get install -y -q podman
fi

mkdir -p "$CONF_DIR"
want_conf='# Written by devenv scripts/ensure-podman.sh: no default ulimits (the default NOFILE
# limit is above this machine'"'"'s hard limit: "error setting rlimit type 7").
[containers]
default_ulimits = []'
if [ "$(cat "$CONF" 2>/dev/null)" != "$want_conf" ]; then
    printf '%s\n' "$want_conf" >"$CONF"
fi

answers() { curl -fsS --max-time 5 "$@" >/dev/null 2>&1; }
unix_ok() { answers --unix-socket "$SOCK" http://d/_ping; }
tcp_ok() { answers "http://$TCP/_ping"; }

# Starts `podman system service` on $1 (an address podman takes), fully detached: a new
# session, stdio redirected and every other inherited descriptor closed, so the caller's pipes
# and locks are not held open by it.
start_service() {
    local address=$1 logfile=$2
    log "starting podman system service on $address (log: $logfile)"
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        CONTAINERS_CONF=$CONF exec setsid podman system service --time=0 "$address"
    ) >"$logfile" 2>&1 </dev/null &
    disown || true
}

if ! unix_ok; then
    mkdir -p "$(dirname "$SOCK")"
    rm -f "$SOCK"
    start_service "unix://$SOCK" "$LOG_DIR/devenv-podman.log"
fi
if ! tcp_ok; then
    start_service "tcp:$TCP" "$LOG_DIR/devenv-podman-tcp.log"
fi
deadline=$((SECONDS + TIMEOUT))
until unix_ok && tcp_ok; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 20 "$LOG_DIR"/devenv-podman*.log >&2 2>/dev/null || true
        die "podman's API did not answer on unix://$SOCK and tcp://$TCP within ${TIMEOUT}s"
    fi
    sleep 0.2
done

# The test images, from docker's copy (built by scripts/build-test-image.sh).
for image in "${images[@]}"; do
    want=$(docker image inspect --format '{{ index .Config.Labels "devenv.build-hash" }}' "$image" 2>/dev/null) \
        || die "docker has no $image to copy (run scripts/build-test-image.sh first)"
    have=$(CONTAINERS_CONF=$CONF podman image inspect --format '{{ index .Labels "devenv.build-hash" }}' "$image" 2>/dev/null || true)
    if [ "$have" != "$want" ]; then
        log "loading $image into podman (docker save | podman load)"
        docker save "$image" | CONTAINERS_CONF=$CONF podman load -q >/dev/null
    fi
done
version=$(curl -fsS --unix-socket "$SOCK" http://d/version | python3 -c '
import json, sys
v = json.load(sys.stdin)
print("%s (API %s to %s)" % (v["Version"], v["MinAPIVersion"], v["ApiVersion"]))')
log "podman $version is ready on unix://$SOCK and tcp://$TCP"
