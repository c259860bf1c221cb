#!/usr/bin/env bash
# Puts the machine back in cold product state, as a new user's machine would be: removes what
# devenv (and its tests) left from earlier runs, and nothing else.
#
#   - native clusters: /dev/shm/devenv-*, $TMPDIR/devenv-*, the fixture's shared test servers
#     (their postmasters are stopped first, recognised by postmaster.pid + data directory);
#   - docker, Podman's API service and Docker 26: containers, volumes and networks labelled
#     dev.devenv.managed=true (everything devenv creates carries that label, the fixture's
#     shared servers included); data directories of tests on the reflink filesystem;
#   - `devenv up` processes of debug builds (the tests' supervisors).
#
# The toolchain's caches (cargo, apt, the built test image) stay. The initdb cache is not
# touched here: .ci/run points DEVENV_CACHE_DIR at a new empty directory instead.
# Idempotent; prints what it removed.
set -euo pipefail

log() { printf 'clean-state: %s\n' "$*" >&2; }

# A postmaster whose data directory is under $1: its postmaster.pid names it, and the process's
# working directory is that data directory (a recycled pid is left alone).
stop_postmasters_under() {
    local root=$1 pidfile pid datadir
    while IFS= read -r pidfile; do
        pid=$(head -n1 "$pidfile" 2>/dev/null || true)
        datadir=$(dirname "$pidfile")
        [ -n "$pid" ] || continue
        if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$(readlink -f "$datadir")" ]; then
            log "stopping postmaster $pid ($datadir)"
            kill -INT "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done < <(find "$root" -maxdepth 6 -name postmaster.pid 2>/dev/null)
}

# Supervisors of this project's builds (tests run the debug one, benchmarks the release one).
pkill -f '/(debug|release)/devenv up' 2>/dev/null && log "stopped leftover devenv up processes" || true

tmp=${TMPDIR:-/tmp}
for dir in /dev/shm/devenv-* "$tmp"/devenv-* /var/lib/devenv/*; do
    [ -e "$dir" ] || continue
    stop_postmasters_under "$dir"
    log "removing $dir"
    rm -rf "$dir"
done

# Containers, volumes and networks labelled dev.devenv.managed=true on the engine at $1 (a
# DOCKER_HOST value), when it answers.
clean_engine() {
    local engine=$1 ids vols nets
    DOCKER_HOST=$engine docker info >/dev/null 2>&1 || return 0
    ids=$(DOCKER_HOST=$engine docker ps -aq --filter label=dev.devenv.managed=true)
    if [ -n "$ids" ]; then
        log "removing containers on $engine: $(echo "$ids" | tr '\n' ' ')"
        # shellcheck disable=SC2086
        DOCKER_HOST=$engine docker rm -f $ids >/dev/null
    fi
    vols=$(DOCKER_HOST=$engine docker volume ls -q --filter label=dev.devenv.managed=true)
    if [ -n "$vols" ]; then
        log "removing volumes on $engine: $(echo "$vols" | tr '\n' ' ')"
        # shellcheck disable=SC2086
        DOCKER_HOST=$engine docker volume rm -f $vols >/dev/null
    fi
    nets=$(DOCKER_HOST=$engine docker network ls -q --filter label=dev.devenv.managed=true)
    if [ -n "$nets" ]; then
        log "removing networks on $engine: $(echo "$nets" | tr '\n' ' ')"
        # shellcheck disable=SC2086
        DOCKER_HOST=$engine docker network rm $nets >/dev/null || true
    fi
}

if command -v docker >/dev/null 2>&1; then
    # Docker (20.10), rootful Podman's API service (scripts/ensure-podman.sh), Docker 26
    # (scripts/ensure-docker26.sh).
    clean_engine "${DOCKER_HOST:-unix:///var/run/docker.sock}"
    clean_engine "unix://${DEVENV_PODMAN_SOCK:-/run/devenv-podman/podman.sock}"
    clean_engine "unix://${DEVENV_DOCKER26_SOCK:-/run/devenv-docker26/docker.sock}"
fi
# Podman's API services (scripts/ensure-podman.sh starts new ones): a service that outlived
# the run that started it answers every later container start with HTTP 500 "write child:
# broken pipe" (seen twice in a row here; a restarted service starts the same container).
if pkill -f 'podman system service --time=0' 2>/dev/null; then
    log "stopped Podman's API services of an earlier run"
    for _ in $(seq 1 50); do pgrep -f 'podman system service --time=0' >/dev/null || break; sleep 0.1; done
fi
# The PostgreSQL 18 test's data directories on the reflink filesystem (scripts/ensure-reflink-fs.sh).
for dir in "${DEVENV_REFLINK_DIR:-/mnt/devenv-reflink}"/devenv-*; do
    [ -e "$dir" ] || continue
    log "removing $dir"
    rm -rf "$dir"
done
log "done"
