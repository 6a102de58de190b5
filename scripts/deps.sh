#!/bin/sh
# deps.sh installs the Debian tools Tandem's build, tests and demo use:
# QEMU (the emulated hosts and the peer VMM), the oracles that check what
# Tandem writes (dtc, iasl, dumpimage, fsck.vfat, sfdisk, edid-decode;
# xmllint for tandem emulate's JUnit XML), busybox for test guests,
# qemu-user-static for the 32-bit ARM test pass, a software TPM (swtpm)
# with tpm2-tools for the measured-boot tests and the demo board's TPM,
# gcc for the hostile test guest, an arm64 C cross compiler for `make
# bench`'s minimal C KVM loop inside the emulated arm64 board,
# vncsnapshot, a real VNC client for the VNC server's tests, binutils,
# whose assembler checks the x86_64 bare-metal test guest's hand-assembled
# bytes against their source (internal/baremetal), and the arm64 cross
# binutils, which assemble and link the arm64 bare-metal test guest. It
# does nothing when everything is already there.
#
# QEMU comes from bookworm-backports (10.0), not bookworm (7.2): the
# emulated hosts the tests boot are steadier and faster under it (the
# README's table of emulated-host boots). On Debian 13 and later the
# suite's own QEMU is new enough.
set -eu

pkgs="qemu-system-x86 qemu-system-arm qemu-utils device-tree-compiler acpica-tools edid-decode
u-boot-tools u-boot-qemu ovmf libxml2-utils bmap-tools dosfstools mtools fdisk e2fsprogs squashfs-tools busybox-static cpio
gcc binutils libc6-dev linux-libc-dev xz-utils zstd qemu-user-static swtpm swtpm-tools tpm2-tools
gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross vncsnapshot"
qemu_min=10
qemu_pkgs="qemu-system-x86 qemu-system-arm qemu-system-common qemu-system-data qemu-utils"

missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
old_qemu=
for q in qemu-system-x86_64 qemu-system-aarch64; do
	v=$("$q" --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
	[ "${v:-0}" -ge "$qemu_min" ] || old_qemu=1
done
[ -z "$missing" ] && [ -z "$old_qemu" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	[ -n "$missing" ] && echo "deps: missing Debian packages:$missing" >&2
	[ -n "$old_qemu" ] && echo "deps: QEMU $qemu_min or later is needed (bookworm-backports)" >&2
	echo "deps: run as root (make deps), or install them with sudo" >&2
	exit 1
fi

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
suffix=
if [ -n "$old_qemu" ] && [ "$codename" = bookworm ]; then
	suffix=/bookworm-backports
	src=/etc/apt/sources.list.d/tandem-backports.sources
	if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
		echo "deps: adding bookworm-backports to apt's sources ($src) for QEMU $qemu_min" >&2
		cat >"$src" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	fi
fi
echo "deps: installing$missing${old_qemu:+ QEMU $qemu_min${suffix:+ from ${suffix#/}}}" >&2
apt-get update -qq || echo "deps: apt-get update reported errors; continuing" >&2
install="$missing"
if [ -n "$old_qemu" ]; then
	install=
	for p in $missing; do
		case " $qemu_pkgs " in *" $p "*) ;; *) install="$install $p" ;; esac
	done
fi
if [ -n "$install" ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $install >/dev/null
fi
if [ -n "$old_qemu" ]; then
	# QEMU on its own, with the backports as its target release: its
	# dependencies (seabios, libbrlapi, ...) then come from there too
	# where it needs their newer versions.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${suffix:+-t ${suffix#/}} $qemu_pkgs >/dev/null
fi
for q in qemu-system-x86_64 qemu-system-aarch64; do
	v=$("$q" --version 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
	if [ "${v:-0}" -lt "$qemu_min" ]; then
		echo "deps: $q is version ${v:-unknown} after the install; the tests need $qemu_min or later" >&2
		exit 1
	fi
done
