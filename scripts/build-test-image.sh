#!/usr/bin/env bash
# Build a local PostgreSQL image that behaves like the official
# `postgres:VERSION` image (same env vars, entrypoint semantics, port,
# PGDATA, stop signal) without pulling from any registry: a Debian minbase
# rootfs with Debian's postgresql-VERSION, made with debootstrap from the
# Debian mirror and loaded with `docker load` (no registry, no builder).
#
#   VERSION  Debian suite   PGDATA (as the official image)
#   13       bullseye       /var/lib/postgresql/data
#   15       bookworm       /var/lib/postgresql/data
#   17       trixie         /var/lib/postgresql/data
#   18       sid            /var/lib/postgresql/18/docker
#
# Usage: scripts/build-test-image.sh [VERSION [IMAGE]]
#   VERSION  PostgreSQL major version (default 13)
#   IMAGE    image name (default: devenv-test/postgres:VERSION)
#
# Env:
#   DEVENV_TEST_IMAGE_REBUILD  1 = rebuild even if the image is up to date
#   DEVENV_DEBIAN_MIRROR       Debian mirror (default: the one apt uses, else
#                              http://deb.debian.org/debian)
#
# Idempotent: the image is labelled with a hash of this script, of
# docker/postgres/docker-entrypoint.sh and of VERSION (label devenv.build-hash);
# when an image with that name and that label exists, nothing is done.
set -euo pipefail

log() { printf 'build-test-image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/.." && pwd)
self="$script_dir/$(basename "${BASH_SOURCE[0]}")"
entrypoint="$repo_root/docker/postgres/docker-entrypoint.sh"

PG_MAJOR=${1:-13}
PGDATA_DIR=/var/lib/postgresql/data
VOLUME_DIR=$PGDATA_DIR
case $PG_MAJOR in
    13) SUITE=bullseye ;;
    15) SUITE=bookworm ;;
    17) SUITE=trixie ;;
    # From 18 on the official image keeps PGDATA in a directory per major version under
    # the volume, so that pg_upgrade --link can work within one volume.
    18) SUITE=sid; PGDATA_DIR=/var/lib/postgresql/18/docker; VOLUME_DIR=/var/lib/postgresql ;;
    *) die "no Debian suite known for PostgreSQL '$PG_MAJOR' (13, 15, 17 or 18)" ;;
esac
IMAGE=${2:-devenv-test/postgres:$PG_MAJOR}
case ${IMAGE##*/} in *:*|*@*) ;; *) IMAGE=$IMAGE:latest ;; esac
PACKAGES=postgresql-$PG_MAJOR,libnss-wrapper
HASH_LABEL=devenv.build-hash

[ -f "$entrypoint" ] || die "missing $entrypoint"
build_hash=$( (cat "$self" "$entrypoint"; echo "$PG_MAJOR") | sha256sum | cut -c1-64)

"$script_dir/ensure-docker.sh"

current_hash() {
    docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$IMAGE" 2>/dev/null || true
}
up_to_date() {
    [ "${DEVENV_TEST_IMAGE_REBUILD:-0}" != 1 ] && [ "$(current_hash)" = "$build_hash" ]
}

if up_to_date; then
    log "$IMAGE is up to date ($HASH_LABEL=${build_hash:0:12}); nothing to do"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "building $IMAGE needs root (debootstrap)"

# Serialise concurrent builds (e.g. parallel test binaries); the second one
# finds the image built by the first.
lock=/run/lock/devenv-build-test-image-$PG_MAJOR.lock
mkdir -p "$(dirname "$lock")"
exec 9>"$lock"
if ! flock -n 9; then
    log "another build is running; waiting for it"
    flock 9
fi
if up_to_date; then
    log "$IMAGE is up to date ($HASH_LABEL=${build_hash:0:12}); nothing to do"
    exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
    log "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache policy debootstrap 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt-get update -q
    fi
    apt-get install -y -q debootstrap
fi
PATH=$PATH:/usr/sbin:/sbin

# The Debian mirror apt already uses (deb822 *.sources or one-line format),
# minus -security / -updates / ports entries.
detect_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f" \
            | grep -E '^https?://[^ ]*/debian/?$' | head -n1 || true)
        [ -n "$uri" ] && { echo "${uri%/}"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break } }' "$f" \
            | grep -E '/debian/?$' | head -n1 || true)
        [ -n "$uri" ] && { echo "${uri%/}"; return; }
    done
    echo http://deb.debian.org/debian
}
MIRROR=${DEVENV_DEBIAN_MIRROR:-$(detect_mirror)}

started=$SECONDS
workdir=$(mktemp -d "/var/tmp/devenv-pg$PG_MAJOR-image.XXXXXX")
rootfs=$workdir/rootfs

# Kill processes whose root is inside the rootfs (e.g. a server a maintainer
# script started) and unmount whatever debootstrap left mounted, so the
# rootfs can be removed without touching the host.
release_rootfs() {
    local p r m
    for p in /proc/[0-9]*; do
        r=$(readlink "$p/root" 2>/dev/null) || continue
        case $r in
            "$rootfs"|"$rootfs"/*) log "killing leftover process ${p#/proc/} ($(tr '\0' ' ' <"$p/cmdline" 2>/dev/null))"
                kill -9 "${p#/proc/}" 2>/dev/null || true ;;
        esac
    done
    # deepest mount points first
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v r="$rootfs" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
}
cleanup() {
    release_rootfs
    rm -rf --one-file-system "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "debootstrap $SUITE ($PACKAGES) from $MIRROR into $rootfs"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" \
        >"$workdir/debootstrap.log" 2>&1; then
    tail -n 40 "$workdir/debootstrap.log" >&2
    [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed"
fi
log "debootstrap done after $((SECONDS - started))s"
release_rootfs

in_root() { chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

pg_bin=/usr/lib/postgresql/$PG_MAJOR/bin
[ -x "$rootfs$pg_bin/postgres" ] || die "postgres $PG_MAJOR missing in the rootfs"
in_root getent passwd postgres >/dev/null || die "no postgres user in the rootfs"

# No default cluster: the entrypoint initialises $PGDATA itself.
rm -rf "$rootfs/etc/postgresql/$PG_MAJOR" "$rootfs/var/lib/postgresql/$PG_MAJOR"
rm -f "$rootfs"/var/log/postgresql/*

# Same uid/gid as the official postgres:*-alpine images (70; the Debian
# flavoured official images use 999), so `--user 70`, bind-mount ownership
# etc. behave the same.
PG_UID=70
old_uid=$(in_root id -u postgres)
old_gid=$(in_root id -g postgres)
if [ "$old_uid" != "$PG_UID" ] || [ "$old_gid" != "$PG_UID" ]; then
    if in_root getent passwd "$PG_UID" >/dev/null || in_root getent group "$PG_UID" >/dev/null; then
        log "warning: uid/gid $PG_UID taken in the rootfs; keeping postgres as $old_uid:$old_gid"
    else
        in_root groupmod -g "$PG_UID" postgres
        in_root usermod -u "$PG_UID" -g "$PG_UID" postgres
        find "$rootfs" -xdev \( -uid "$old_uid" -o -gid "$old_gid" \) -print0 |
            while IFS= read -r -d '' f; do
                u=$(stat -c %u "$f"); g=$(stat -c %g "$f")
                [ "$u" = "$old_uid" ] && u=$PG_UID
                [ "$g" = "$old_gid" ] && g=$PG_UID
                chown -h "$u:$g" "$f"
            done
    fi
fi

# Like the official image: listen on all interfaces by default.
sample=$rootfs/usr/share/postgresql/$PG_MAJOR/postgresql.conf.sample
grep -q "^#listen_addresses" "$sample" || die "unexpected $sample"
sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$sample"

# NB: paths like $rootfs/var/run are absolute symlinks (/var/run -> /run)
# that would resolve on the HOST: touch them only from inside the chroot.
in_root sh -ec '
    rm -rf /run/postgresql
    mkdir -p /docker-entrypoint-initdb.d /run/postgresql "$1" "$2"
    chown postgres:postgres /run/postgresql "$1" "$2"
    chmod 3777 /run/postgresql
    chmod 1777 "$1" "$2"
' sh "$VOLUME_DIR" "$PGDATA_DIR"
install -m 0755 "$entrypoint" "$rootfs/usr/local/bin/docker-entrypoint.sh"
in_root setpriv --version >/dev/null || die "setpriv missing in the rootfs"

# Slim down and drop anything host-specific.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/debootstrap
# The LLVM JIT provider (libLLVM + libz3, ~100 MB) is never needed by the
# tests; without llvmjit.so PostgreSQL silently runs without JIT.
rm -rf "$rootfs/usr/lib/postgresql/$PG_MAJOR/lib/llvmjit.so" \
    "$rootfs/usr/lib/postgresql/$PG_MAJOR/lib/llvmjit_types.bc" \
    "$rootfs/usr/lib/postgresql/$PG_MAJOR/lib/bitcode" \
    "$rootfs"/usr/lib/*-linux-gnu/libLLVM*.so* "$rootfs"/usr/lib/*-linux-gnu/libz3.so*
rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
: >"$rootfs/etc/resolv.conf"
echo localhost >"$rootfs/etc/hostname"

pg_version=$(in_root "$pg_bin/postgres" --version | awk '{ print $3 }')
log "rootfs ready ($(du -sh --one-file-system "$rootfs" | cut -f1), PostgreSQL $pg_version) after $((SECONDS - started))s; loading as $IMAGE"

# Load the rootfs as a one-layer image with `docker load` (docker-archive
# format) rather than `docker import`: a 20.10 daemon rejects
# `--change STOPSIGNAL`, and SIGINT (fast shutdown) is what makes
# `docker stop` quick, like in the official image.
imgdir=$workdir/image
mkdir -p "$imgdir"
diff_id=sha256:$(tar --numeric-owner -C "$rootfs" -cf - . | tee "$imgdir/layer.tar" | sha256sum | cut -c1-64)
release_rootfs
rm -rf --one-file-system "$rootfs"
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat >"$imgdir/config.json" <<JSON
{
  "architecture": "$arch",
  "os": "linux",
  "created": "$created",
  "config": {
    "Env": [
      "PATH=$pg_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "LANG=C.UTF-8",
      "PG_MAJOR=$PG_MAJOR",
      "PG_VERSION=$pg_version",
      "PGDATA=$PGDATA_DIR"
    ],
    "Entrypoint": ["docker-entrypoint.sh"],
    "Cmd": ["postgres"],
    "ExposedPorts": { "5432/tcp": {} },
    "Volumes": { "$VOLUME_DIR": {} },
    "StopSignal": "SIGINT",
    "Labels": {
      "$HASH_LABEL": "$build_hash",
      "devenv.pg-version": "$pg_version",
      "devenv.base": "debian-$SUITE",
      "devenv.built": "$created"
    }
  },
  "rootfs": { "type": "layers", "diff_ids": ["$diff_id"] },
  "history": [
    { "created": "$created", "created_by": "scripts/build-test-image.sh: debootstrap --variant=minbase --include=$PACKAGES $SUITE" }
  ]
}
JSON
config_name=$(sha256sum "$imgdir/config.json" | cut -c1-64).json
mv "$imgdir/config.json" "$imgdir/$config_name"
printf '[{"Config":"%s","RepoTags":["%s"],"Layers":["layer.tar"]}]\n' "$config_name" "$IMAGE" >"$imgdir/manifest.json"

old_id=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
tar -C "$imgdir" -c manifest.json "$config_name" layer.tar | docker load >/dev/null

[ "$(current_hash)" = "$build_hash" ] || die "load finished but $IMAGE has no $HASH_LABEL=$build_hash label"
new_id=$(docker image inspect --format '{{.Id}}' "$IMAGE")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    # previous build, now untagged; fails harmlessly if a container uses it
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi
log "built $IMAGE ($new_id, PostgreSQL $pg_version) in $((SECONDS - started))s"
