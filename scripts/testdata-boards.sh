#!/bin/sh
# testdata-boards.sh unpacks the real board device trees and kernel configs
# that the board profiles (platforms/) and the porting kit (bsp/) are tested
# against, into the git-ignored build/cache/boards/. Nothing it fetches is
# committed. It is idempotent: a stamp per architecture names the .deb that
# was unpacked, and a second run with the same archive state does no work.
# It reuses a .deb that scripts/testdata.sh already downloaded.
#
# Usage: scripts/testdata-boards.sh
#
# Layout:
#   build/cache/boards/armhf/*.dtb     every armhf DTB of linux-image-armmp-lpae (flat)
#   build/cache/boards/armhf/config    that kernel's .config
#   build/cache/boards/arm64/apm/...   the arm64 DTBs of linux-image-arm64 (vendor dirs)
#   build/cache/boards/arm64/config    that kernel's .config
#   build/cache/boards/qemu/virt-arm64.dtb, virt-arm32.dtb   dumped by QEMU
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TANDEM_CACHE:-$root/build/cache}
debs=$cache/debs

# shellcheck source=scripts/aptcache.sh
. "$root/scripts/aptcache.sh"
out=$cache/boards

log() { printf 'testdata-boards: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_arch() {
	a=$1
	if ! dpkg --print-foreign-architectures | grep -qx "$a" && [ "$a" != "$(dpkg --print-architecture)" ]; then
		[ "$(id -u)" = 0 ] || die "need root to run: dpkg --add-architecture $a"
		dpkg --add-architecture "$a"
		apt-get update -qq || log "apt-get update reported errors; continuing"
	fi
}

# resolve META prints the versioned kernel package a meta package depends on.
resolve() {
	name=$(apt_cache depends "$1" 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}')
	[ -n "$name" ] || die "cannot resolve $1 through apt-cache depends: is the package index current (apt-get update)?"
	echo "$name"
}

# download PKG:ARCH prints the .deb's path in $debs, fetching it once.
download() {
	pkg=$1 parch=${1#*:} base=${1%%:*}
	ver=$(apt_cache policy "$pkg" | awk '/Candidate:/{print $2; exit}')
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no candidate version for $pkg"
	ever=$(echo "$ver" | sed 's/:/%3a/g')
	mkdir -p "$debs"
	f=$debs/${base}_${ever}_${parch}.deb
	if [ ! -f "$f" ]; then
		log "downloading $pkg $ver"
		sandbox=
		[ "$(id -u)" = 0 ] && sandbox="-o APT::Sandbox::User=root"
		(cd "$debs" && apt-get download -q $bincache $sandbox "$pkg=$ver" >&2) || die "apt-get download $pkg=$ver failed"
	fi
	[ -f "$f" ] || die "apt-get download left no $f"
	echo "$f"
}

# unpack DEBARCH META FLAT: DTBs and config into $out/DEBARCH.
unpack() {
	debarch=$1 meta=$2 flat=$3
	need_arch "$debarch"
	pkg=$(resolve "$meta")
	case $pkg in *:*) ;; *) pkg=$pkg:$debarch ;; esac
	deb=$(download "$pkg")
	dest=$out/$debarch
	if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$(basename "$deb")" ]; then
		log "$debarch: up to date ($(basename "$deb"))"
		return 0
	fi
	mkdir -p "$out"
	tmp=$(mktemp -d "$out/.unpack.XXXXXX")
	log "unpacking $(basename "$deb")"
	dpkg-deb -x "$deb" "$tmp"
	cfg=$(ls "$tmp"/boot/config-* | head -n1)
	[ -f "$cfg" ] || die "$deb has no boot/config-*"
	dtbdir=$(ls -d "$tmp"/usr/lib/linux-image-* | head -n1)
	[ -d "$dtbdir" ] || die "$deb has no usr/lib/linux-image-*/ DTB directory"
	rm -rf "$dest.new"
	mkdir -p "$dest.new"
	mv "$cfg" "$dest.new/config"
	if [ "$flat" = yes ]; then
		find "$dtbdir" -name '*.dtb' -exec mv {} "$dest.new/" \;
	else
		(cd "$dtbdir" && find . -name '*.dtb' | cpio -pdm --quiet "$dest.new")
	fi
	basename "$deb" >"$dest.new/.stamp"
	rm -rf "$tmp" "$dest"
	mv "$dest.new" "$dest"
	log "$debarch: $(find "$dest" -name '*.dtb' | wc -l) DTBs and config in $dest"
}

# qemu_dtbs dumps the QEMU virt boards' device trees; QEMU writes them
# and exits at once.
qemu_dtbs() {
	d=$out/qemu
	mkdir -p "$d"
	if command -v qemu-system-aarch64 >/dev/null && [ ! -f "$d/virt-arm64.dtb" ]; then
		qemu-system-aarch64 -M virt,virtualization=on,gic-version=3,dumpdtb="$d/virt-arm64.dtb.new" -cpu max -smp 2 -m 1024 -nographic >/dev/null
		mv "$d/virt-arm64.dtb.new" "$d/virt-arm64.dtb"
	fi
	if command -v qemu-system-arm >/dev/null && [ ! -f "$d/virt-arm32.dtb" ]; then
		qemu-system-arm -M virt,virtualization=on,dumpdtb="$d/virt-arm32.dtb.new" -cpu cortex-a15 -smp 2 -m 1024 -nographic >/dev/null
		mv "$d/virt-arm32.dtb.new" "$d/virt-arm32.dtb"
	fi
}

command -v dpkg-deb >/dev/null || die "dpkg-deb not found: this script needs a Debian or Ubuntu machine"
command -v cpio >/dev/null || die "cpio not found (apt-get install cpio)"
unpack armhf linux-image-armmp-lpae:armhf yes
unpack arm64 linux-image-arm64:arm64 no
qemu_dtbs
