#!/bin/sh
# deps.sh installs the Debian tools Tandem's build, tests and demo use:
# QEMU (the emulated hosts and the peer VMM), the oracles that check what
# Tandem writes (dtc, iasl, dumpimage, fsck.vfat, sfdisk), and busybox for
# test guests. It does nothing when everything is already there.
#
# QEMU must be 10 or later. Debian 12's 7.2 emulates AMD's SVM with a flaw
# the x86 end-to-end tests kept hitting: a host interrupt let in while a
# nested guest exits, whose page faults recurse until the emulated host's
# kernel stack overflows, or an emulated host that freezes (README,
# Testing). On Debian 12 it comes from bookworm-backports; Debian 13 has it.
set -eu

qemu_min=10
qemu_pkgs="qemu-system-x86 qemu-system-arm qemu-utils"
pkgs="device-tree-compiler acpica-tools
u-boot-tools u-boot-qemu bmap-tools dosfstools mtools fdisk e2fsprogs squashfs-tools busybox-static cpio
gcc libc6-dev linux-libc-dev xz-utils zstd"

# qemu_major prints the major version of one QEMU binary, or nothing.
qemu_major() {
	"$1" --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p'
}

# qemu_ok says whether both system emulators are there and new enough.
qemu_ok() {
	for q in qemu-system-x86_64 qemu-system-aarch64; do
		v=$(qemu_major "$q")
		[ -n "$v" ] && [ "$v" -ge "$qemu_min" ] || return 1
	done
	command -v qemu-img >/dev/null
}

missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
qemu_ok || missing="$missing $qemu_pkgs"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages (QEMU $qemu_min or later):$missing" >&2
	echo "deps: run as root, or: sudo apt-get install$missing" >&2
	exit 1
fi
# Debian 12 has QEMU 10 in its backports only: the source is added and
# just QEMU's packages are taken from it.
backports=
if [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = bookworm ] && ! qemu_ok; then
	list=/etc/apt/sources.list.d/tandem-bookworm-backports.list
	[ -f "$list" ] || echo "deb http://deb.debian.org/debian bookworm-backports main" >"$list"
	backports=bookworm-backports
fi
echo "deps: installing$missing${backports:+ (QEMU from $backports)}" >&2
apt-get update -qq || echo "deps: apt-get update reported errors; continuing" >&2
rest=
for p in $missing; do
	case " $qemu_pkgs " in *" $p "*) ;; *) rest="$rest $p" ;; esac
done
if [ -n "$rest" ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $rest >/dev/null
fi
if ! qemu_ok; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${backports:+-t $backports} $qemu_pkgs >/dev/null
fi
qemu_ok || {
	echo "deps: QEMU $qemu_min or later is needed; have: $(qemu-system-x86_64 --version 2>/dev/null | head -n 1)" >&2
	exit 1
}
