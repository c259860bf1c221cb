#!/usr/bin/env bash
# Make sure a Docker engine is reachable with the `docker` client in PATH.
#
#   - `docker info` already answers   -> nothing to do.
#   - `dockerd` missing               -> apt-get install docker.io
#                                        (apt-get update only when needed).
#   - dockerd not running             -> start it fully detached and wait
#                                        (bounded) until `docker info` answers.
#
# Idempotent; safe to call from other scripts.  Env knobs:
#   DEVENV_DOCKERD_LOG      log file for a dockerd we start (default /var/log/devenv-dockerd.log)
#   DEVENV_DOCKER_TIMEOUT   seconds to wait for the daemon (default 60)
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

DOCKERD_LOG=${DEVENV_DOCKERD_LOG:-/var/log/devenv-dockerd.log}
TIMEOUT=${DEVENV_DOCKER_TIMEOUT:-60}

command -v docker >/dev/null 2>&1 || die "no 'docker' client in PATH"

docker_ok() { docker info >/dev/null 2>&1; }

check_client() {
    # Client and server versions; the client negotiates the API version down
    # to what the daemon supports (e.g. a 28.x client with a 20.10 daemon).
    local v
    if ! v=$(docker version --format 'client {{.Client.Version}} / server {{.Server.Version}} (API {{.Server.APIVersion}})' 2>&1); then
        die "'docker version' failed: $v"
    fi
    log "docker is ready: $v"
}

if docker_ok; then
    check_client
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    die "docker daemon not reachable and not running as root (cannot install/start dockerd)"
fi

if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
    log "dockerd not found; installing docker.io via apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # Only refresh package lists when apt does not know a candidate yet.
    if ! apt-cache policy docker.io 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt-get update -q
    fi
    apt-get install -y -q docker.io
fi
PATH=$PATH:/usr/sbin:/sbin
command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after installing docker.io"

# The machine's engine (however it was started: here, by systemd), not another dockerd
# (Docker 26 of scripts/ensure-docker26.sh, a test's private one, each with a pidfile of its
# own): the one whose pid is in the default pidfile.
running() { [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; }
if running; then
    log "dockerd is already running (pid $(cat /var/run/docker.pid)); waiting for it to answer"
else
    log "starting dockerd (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # Fully detached: new session, stdin/stdout/stderr redirected and every
    # other inherited descriptor closed, so the caller's pipes (CI, cargo test
    # harness, $(...)) and locks are not held open by the daemon.
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec setsid dockerd
    ) >"$DOCKERD_LOG" 2>&1 </dev/null &
    disown || true
fi

deadline=$((SECONDS + TIMEOUT))
until docker_ok; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        log "docker daemon did not answer within ${TIMEOUT}s; last lines of $DOCKERD_LOG:"
        tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
        die "docker daemon not available"
    fi
    if ! running && ! pgrep -fx dockerd >/dev/null 2>&1; then
        log "dockerd exited; last lines of $DOCKERD_LOG:"
        tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
        die "dockerd failed to start"
    fi
    sleep 0.5
done

check_client
