#!/usr/bin/env bash
# Make sure a second, newer Docker engine answers beside Debian bookworm's 20.10: Debian
# trixie's docker.io (26.x), whose libraries do not fit bookworm, run from a trixie rootfs
# (debootstrap) in a mount namespace of its own, with its own data root, exec root, socket
# and bridge, and without touching iptables (20.10 owns them), with the local test images
# copied in from 20.10 (docker save | docker load).
#
#   - no rootfs                       -> debootstrap trixie (docker.io) into $ROOT/rootfs
#   - the engine does not answer      -> mounts (the rootfs on itself, /proc, /sys, /dev, the
#                                        socket directory), the bridge devenv26br, one iptables
#                                        rule letting its own subnets talk (20.10 set FORWARD
#                                        to DROP), its network store removed (see below: its
#                                        start would delete docker0), then dockerd, detached;
#                                        wait (bounded); docker0 must still be there
#   - a test image missing or older than 20.10's copy (label devenv.build-hash) -> load it
#
# Usage: scripts/ensure-docker26.sh [IMAGE...]   (default devenv-test/postgres:13)
# Env:
#   DEVENV_DOCKER26_SOCK     socket (default /run/devenv-docker26/docker.sock)
#   DEVENV_DOCKER26_ROOT     rootfs and state (default /var/lib/devenv-docker26)
#   DEVENV_DOCKER26_TIMEOUT  seconds to wait for the engine (default 60)
#   DEVENV_DEBIAN_MIRROR     Debian mirror (default http://deb.debian.org/debian)
# Idempotent; never stops an engine that answers. Needs root.
set -euo pipefail

log() { printf 'ensure-docker26: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SOCK=${DEVENV_DOCKER26_SOCK:-/run/devenv-docker26/docker.sock}
ROOT=${DEVENV_DOCKER26_ROOT:-/var/lib/devenv-docker26}
TIMEOUT=${DEVENV_DOCKER26_TIMEOUT:-60}
MIRROR=${DEVENV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs=$ROOT/rootfs
sock_dir=$(dirname "$SOCK")
BRIDGE=devenv26br
BRIDGE_CIDR=10.227.0.1/24
POOL=10.226.0.0/16
SUBNETS=10.226.0.0/15
LOG=/var/log/devenv-docker26.log
if [ $# -gt 0 ]; then images=("$@"); else images=(devenv-test/postgres:13); fi
PATH=$PATH:/usr/sbin:/sbin

ping_ok() { curl -fsS --max-time 5 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }

if ! ping_ok; then
    [ "$(id -u)" -eq 0 ] || die "starting Docker 26 needs root"
    if [ ! -x "$rootfs/usr/sbin/dockerd" ]; then
        command -v debootstrap >/dev/null 2>&1 || die "debootstrap missing (scripts/ensure-postgres.sh --debootstrap)"
        log "debootstrap trixie (docker.io) from $MIRROR into $rootfs"
        rm -rf --one-file-system "$rootfs.tmp"
        mkdir -p "$ROOT"
        if ! debootstrap --variant=minbase --include=docker.io,ca-certificates trixie \
                "$rootfs.tmp" "$MIRROR" >"$ROOT/debootstrap.log" 2>&1; then
            tail -n 30 "$ROOT/debootstrap.log" >&2
            die "debootstrap failed"
        fi
        rm -rf "$rootfs.tmp"/var/cache/apt/archives/*.deb
        mv "$rootfs.tmp" "$rootfs"
    fi
    # dockerd remounts / private when it unpacks images: the rootfs must be a mount point.
    mountpoint -q "$rootfs" || mount --bind "$rootfs" "$rootfs"
    mountpoint -q "$rootfs/proc" || mount -t proc proc "$rootfs/proc"
    mountpoint -q "$rootfs/sys" || mount --rbind /sys "$rootfs/sys"
    mountpoint -q "$rootfs/dev" || mount --rbind /dev "$rootfs/dev"
    mkdir -p "$sock_dir" "$rootfs$sock_dir"
    mountpoint -q "$rootfs$sock_dir" || mount --bind "$sock_dir" "$rootfs$sock_dir"
    # Its own default bridge (20.10 has docker0) and address pool.
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
    fi
    ip link set "$BRIDGE" up
    iptables -C FORWARD -s "$SUBNETS" -d "$SUBNETS" -j ACCEPT 2>/dev/null \
        || iptables -I FORWARD 1 -s "$SUBNETS" -d "$SUBNETS" -j ACCEPT
    rm -f "$SOCK"
    # It shares the machine's network namespace, and a dockerd that finds a default "bridge"
    # network in its store at start deletes it, and with --default-address-pool the link
    # docker0 too (moby's "clear stale bridge network", which names docker0 whatever
    # --bridge says): 20.10's bridge, and every container on it. Without the store there is
    # nothing stale to clear (its networks are remade on demand; its images stay).
    rm -f "$rootfs/var/lib/docker/network/files/local-kv.db"
    docker0=$(ip -o -4 addr show dev docker0 2>/dev/null | awk '{print $4}' | head -n 1)
    log "starting dockerd 26 (log: $LOG)"
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec setsid unshare --mount --propagation private \
            chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
            dockerd -H "unix://$SOCK" --data-root /var/lib/docker --exec-root /run/docker-exec \
            --pidfile /run/dockerd.pid --bridge "$BRIDGE" --default-address-pool "base=$POOL,size=24" \
            --iptables=false --ip6tables=false
    ) >"$LOG" 2>&1 </dev/null &
    disown || true
    deadline=$((SECONDS + TIMEOUT))
    until ping_ok; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$LOG" >&2
            die "Docker 26 did not answer on unix://$SOCK within ${TIMEOUT}s"
        fi
        sleep 0.2
    done
    if [ -n "$docker0" ] && ! ip link show docker0 >/dev/null 2>&1; then
        die "starting Docker 26 removed 20.10's bridge docker0 ($docker0); restart 20.10's dockerd"
    fi
fi

for image in "${images[@]}"; do
    want=$(docker image inspect --format '{{ index .Config.Labels "devenv.build-hash" }}' "$image" 2>/dev/null) \
        || die "Docker 20.10 has no $image to copy (run scripts/build-test-image.sh first)"
    have=$(DOCKER_HOST=unix://$SOCK docker image inspect --format '{{ index .Config.Labels "devenv.build-hash" }}' "$image" 2>/dev/null || true)
    if [ "$have" != "$want" ]; then
        log "loading $image into Docker 26"
        docker save "$image" | DOCKER_HOST=unix://$SOCK docker load -q >/dev/null
    fi
done
log "Docker $(DOCKER_HOST=unix://$SOCK docker version --format '{{.Server.Version}} (API {{.Server.MinAPIVersion}} to {{.Server.APIVersion}})') is ready on unix://$SOCK"
