#!/bin/sh
# deps.sh installs the Debian tools Tandem's build, tests and demo use:
# QEMU (the emulated hosts and the peer VMM), the oracles that check what
# Tandem writes (dtc, iasl, dumpimage, fsck.vfat, sfdisk), and busybox for
# test guests. It does nothing when everything is already there.
set -eu

pkgs="qemu-system-x86 qemu-system-arm qemu-utils device-tree-compiler acpica-tools
u-boot-tools u-boot-qemu bmap-tools dosfstools mtools fdisk e2fsprogs squashfs-tools busybox-static cpio
gcc libc6-dev linux-libc-dev xz-utils zstd qemu-user-static"

missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run as root, or: sudo apt-get install$missing" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
apt-get update -qq || echo "deps: apt-get update reported errors; continuing" >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
