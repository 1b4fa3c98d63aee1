#!/usr/bin/env bash
# Imports any root filesystem tarball as an image: import-image.sh NAME TARBALL
# copies it to $MYDOCKER_ROOT/images/NAME.tar (default root /var/lib/mydocker), after checking that
# it is a readable tar. Example: a Debian rootfs from `debootstrap` tarred with `tar -C dir -cf x.tar .`
set -euo pipefail

say() { echo "import-image: $*" >&2; }
die() { say "$*"; exit 1; }

[ $# = 2 ] || die "usage: import-image.sh NAME TARBALL"
name=$1
tarball=$2
root="${MYDOCKER_ROOT:-/var/lib/mydocker}"
case "$root" in /*) ;; *) die "MYDOCKER_ROOT must be an absolute path, got '$root'" ;; esac
[ "$(id -u)" = 0 ] || die "must be run as root (images live under $root)"
[[ "$name" =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$ ]] || die "invalid image name '$name' (letters, digits, _ . -)"
[ -f "$tarball" ] || die "no such file: $tarball"
tar -tf "$tarball" >/dev/null 2>&1 || die "not a readable tar archive: $tarball"
tar -tf "$tarball" | grep -qE '^(\./)?bin/sh$|^(\./)?bin/$' || say "warning: $tarball has no /bin/sh"

mkdir -p "$root/images"
cp "$tarball" "$root/images/.$name.tar.tmp"
mv "$root/images/.$name.tar.tmp" "$root/images/$name.tar"
# A stale unpacked copy of an older image with this name would shadow the new tarball.
rm -rf "${root:?}/images/$name"
say "imported $tarball as $root/images/$name.tar"
