#!/usr/bin/env bash
# Builds $MYDOCKER_ROOT/images/busybox.tar (default root /var/lib/mydocker): the image every step
# from 05 on runs. It holds Debian's static busybox with every applet linked, a minimal /etc, and
# the empty directories the runtime mounts onto. Running it again rebuilds the same tarball.
set -euo pipefail

say() { echo "build-busybox-image: $*" >&2; }
die() { say "$*"; exit 1; }

root="${MYDOCKER_ROOT:-/var/lib/mydocker}"
case "$root" in /*) ;; *) die "MYDOCKER_ROOT must be an absolute path, got '$root'" ;; esac
[ "$(id -u)" = 0 ] || die "must be run as root (it may install busybox-static and writes under $root)"

busybox=/bin/busybox
# Only a static busybox works in an image that has no libc of its own.
is_static() { [ -x "$busybox" ] && ! LC_ALL=C ldd "$busybox" >/dev/null 2>&1; }
if ! is_static; then
    command -v apt-get >/dev/null || die "busybox-static is not installed and apt-get is missing: install a static busybox at $busybox by hand"
    say "installing busybox-static with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null \
        || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null; } \
        || die "apt-get install busybox-static failed"
    is_static || die "$busybox is not a static binary after installing busybox-static"
fi

# The state tree is root's alone, as the runtime keeps it (Paths.validateRoot): an unpacked image
# holds setuid-root files, and another user who could reach them would be root.
mkdir -p "$root" && chmod 700 "$root"
images="$root/images"
mkdir -p "$images"
staging=$(mktemp -d "$images/.busybox-build.XXXXXX")
chmod 755 "$staging"
trap 'rm -rf "$staging" "$staging.tar"' EXIT

mkdir -p "$staging"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var,home}
chmod 1777 "$staging/tmp"
chmod 700 "$staging/root"
cp "$busybox" "$staging/bin/busybox"
# Every applet busybox knows, at the path it expects (bin/ls, usr/bin/awk, sbin/ip, ...).
for applet in $("$busybox" --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$staging/$(dirname "$applet")"
    ln -sf /bin/busybox "$staging/$applet"
done
[ -e "$staging/bin/sh" ] || ln -s /bin/busybox "$staging/bin/sh"

cat >"$staging/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$staging/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
echo mydocker >"$staging/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$staging/etc/hosts"

# Sorted names, fixed owner and time: the same busybox always gives the same tarball.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$staging" -cf "$staging.tar" .
# import-image.sh puts it in place as any image is replaced: refused while a container uses the
# old busybox, and the old unpacked tree goes with the old tarball. Its words only if it fails.
if ! imported=$("$(dirname "${BASH_SOURCE[0]}")/import-image.sh" busybox "$staging.tar" 2>&1); then
    echo "$imported" >&2
    exit 1
fi
say "wrote $images/busybox.tar ($("$busybox" --list | wc -l) applets)"
