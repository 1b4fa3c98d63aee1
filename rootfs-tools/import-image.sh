#!/usr/bin/env bash
# Imports any root filesystem tarball as an image: import-image.sh NAME TARBALL
# copies it to $MYDOCKER_ROOT/images/NAME.tar (default root /var/lib/mydocker), after checking that
# it is a readable tar. Example: a Debian rootfs from `debootstrap` tarred with `tar -C dir -cf x.tar .`
# It replaces an image the way `commit -f` does (Steps/step07..step10/Commit.swift, replaceImage):
# under the image's lock, refused while a container uses it, one rename at a time.
set -euo pipefail
# [a-z] below means the 26 ASCII letters only in the C locale.
export LC_ALL=C

say() { echo "import-image: $*" >&2; }
die() { say "$*"; exit 1; }
# MYDOCKER_TEST_PAUSE_AT=MARK stops the script at MARK, as the runtime's trace marks do.
mark() { if [ "${MYDOCKER_TEST_PAUSE_AT:-}" = "$1" ]; then kill -STOP $$; fi; }

[ $# = 2 ] || die "usage: import-image.sh NAME TARBALL"
name=$1
tarball=$2
root="${MYDOCKER_ROOT:-/var/lib/mydocker}"
case "$root" in /*) ;; *) die "MYDOCKER_ROOT must be an absolute path, got '$root'" ;; esac
[ "$(id -u)" = 0 ] || die "must be run as root (images live under $root)"
# The same rule as the runtime's validateImageName (Steps/step07..step10/Commit.swift): change both
# together. NAME becomes images/NAME.tar and images/NAME/, so a name ending in .tar would make one
# image's tree another's tarball, and every lock and temporary file starts with '.', which no name may.
[[ "$name" =~ ^[a-z0-9][a-z0-9_.-]{0,127}$ ]] \
    || die "invalid image name '$name' (lowercase letters, digits, '_', '.', '-'; no '/')"
[[ "$name" != *.tar ]] \
    || die "invalid image name '$name' (a name may not end in '.tar': images/$name is the tarball of image '${name%.tar}')"
[ -f "$tarball" ] || die "no such file: $tarball"
tar -tf "$tarball" >/dev/null 2>&1 || die "not a readable tar archive: $tarball"
# Not grep -q: it would stop reading early, tar would die of SIGPIPE, and pipefail would call that no sh.
tar -tf "$tarball" | grep -E '^(\./)?bin/sh$|^(\./)?bin/$' >/dev/null || say "warning: $tarball has no /bin/sh"

# The state tree is root's alone, as the runtime keeps it (Paths.validateRoot): an unpacked image
# holds setuid-root files, and another user who could reach them would be root.
mkdir -p "$root" && chmod 700 "$root"
images="$root/images"
unpacked="$images/$name"
mkdir -p "$images"
# Leftovers of runs, commits and imports that were killed carry their PID: remove those whose
# process is gone (the runtime's removeLeftovers does the same).
for leftover in "$images/.$name".{unpacking,tar.partial,removing}.*; do
    pid=${leftover##*.}
    if [[ "$pid" =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null; then rm -rf -- "$leftover"; fi
done

in_use() {
    local line
    while IFS= read -r line; do
        case "$line" in *"lowerdir=$unpacked,"* | *"lowerdir=$unpacked") return 0 ;; esac
    done </proc/self/mountinfo
    return 1
}
in_use_message="image '$name' is in use by a running container (stop it before replacing it)"
# Refused before the copy, which may take long, and checked again under the lock.
! in_use || die "$in_use_message"

partial="$images/.$name.tar.partial.$$"
trash="$images/.$name.removing.$$"
trap 'rm -f -- "$partial"' EXIT
cp -- "$tarball" "$partial"
# A run holds this lock shared from finding the image until its runtime exits; -n: do not wait
# for a container that is using the image.
umask 077
exec {lock}>>"$images/.$name.lock"
flock -x -n "$lock" || die "$in_use_message"
mark image-locked
! in_use || die "$in_use_message"
# The old tree goes aside first, then the new tarball in: killed anywhere, the image is the old
# one or the new one, and a half-deleted tree is never where a run would take it as its lower layer.
if [ -e "$unpacked" ]; then mv -T -- "$unpacked" "$trash"; fi
mark image-old-moved
mv -T -- "$partial" "$images/$name.tar"
mark image-new-placed
exec {lock}>&-
rm -rf -- "$trash"
say "imported $tarball as $images/$name.tar"
