#!/usr/bin/env bash
# Make sure a filesystem that clones files (XFS with reflink, loop-mounted from an image file)
# is mounted, for the PostgreSQL 18 `file_copy_method = clone` test and benchmark: a data
# directory there gets copy-on-write database copies.
#
#   - xfsprogs missing  -> apt-get install xfsprogs
#   - no image file     -> a sparse one, mkfs.xfs -m reflink=1
#   - not mounted       -> mount -o loop
#
# Prints the mount point on stdout. Env:
#   DEVENV_REFLINK_DIR   mount point (default /mnt/devenv-reflink)
#   DEVENV_REFLINK_IMG   image file (default /var/tmp/devenv-reflink.xfs)
#   DEVENV_REFLINK_SIZE  image size, sparse (default 4G)
# Idempotent; needs root.
set -euo pipefail

log() { printf 'ensure-reflink-fs: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

DIR=${DEVENV_REFLINK_DIR:-/mnt/devenv-reflink}
IMG=${DEVENV_REFLINK_IMG:-/var/tmp/devenv-reflink.xfs}
SIZE=${DEVENV_REFLINK_SIZE:-4G}

if [ "$(findmnt -n -o FSTYPE --target "$DIR" 2>/dev/null)" = xfs ] && mountpoint -q "$DIR"; then
    echo "$DIR"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "mounting an XFS image at $DIR needs root"
PATH=$PATH:/usr/sbin:/sbin
if ! command -v mkfs.xfs >/dev/null 2>&1; then
    log "installing xfsprogs"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache policy xfsprogs 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt-get update -q >&2
    fi
    apt-get install -y -q xfsprogs >&2
fi
if [ ! -s "$IMG" ]; then
    log "making $IMG ($SIZE, sparse, XFS with reflink)"
    mkdir -p "$(dirname "$IMG")"
    truncate -s "$SIZE" "$IMG.tmp"
    mkfs.xfs -q -m reflink=1 "$IMG.tmp"
    mv "$IMG.tmp" "$IMG"
fi
mkdir -p "$DIR"
mount -o loop "$IMG" "$DIR" || die "could not loop-mount $IMG at $DIR"
chmod 0755 "$DIR"
log "mounted $IMG (XFS, reflink) at $DIR"
echo "$DIR"
