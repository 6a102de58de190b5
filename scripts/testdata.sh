#!/bin/sh
# testdata.sh downloads and unpacks the Debian kernels and busybox that the
# end-to-end tests boot, into the git-ignored build/cache/. Nothing it fetches
# is committed. It is idempotent: a stamp file per architecture records the
# exact package versions unpacked, and a second run with the same archive
# state does no work.
#
# Usage: scripts/testdata.sh [ARCH...]    ARCH: x86 (default), arm64, armhf,
#                                        x86-6.12, arm64-6.12, armhf-6.12
#                                        (the same guests with Linux 6.12
#                                        from bookworm-backports),
#                                        x86-generic (Debian's generic
#                                        amd64 kernel, which has DRM: the
#                                        x86 display test's guest),
#                                        arm64-cloud (the virt board's host
#                                        with a TPM), u-boot-qemu-trixie
#                                        (the virt board's firmware with a
#                                        display), qemu-arm64 (make
#                                        bench's peer VMM), swtpm-arm64 (the
#                                        software TPM behind an arm64
#                                        guest's virtual TPM), vncsnapshot-arm64
#                                        (a VNC client inside the emulated
#                                        arm64 host), arm64-rt
#                                        (Debian's PREEMPT_RT arm64 kernel,
#                                        the real-time control guest's),
#                                        rt-tests-arm64 and stress-ng-arm64
#                                        (cyclictest and stress-ng for the
#                                        guests of make bench's rt part),
#                                        x86-rt and rt-tests-amd64 (the
#                                        same real-time guest on x86:
#                                        Debian's PREEMPT_RT amd64 kernel
#                                        and amd64 cyclictest),
#                                        perf-arm64 (Debian's perf for the
#                                        arm64 guest that counts cycles)
#
# Layout (per ARCH):
#   build/cache/ARCH/vmlinuz          the guest kernel
#   build/cache/ARCH/release          its `uname -r`
#   build/cache/ARCH/modules/RELEASE  its /lib/modules tree
#   build/cache/ARCH/config-RELEASE   its .config (what `tandem image build`
#                                     checks the host kernel's KVM with)
#   build/cache/ARCH/busybox          a static busybox (not for armhf: the arm64 host runs it)
#   build/cache/ARCH/host/...         the emulated host's kernel, same layout, when it
#                                     must differ from the guest's (x86: only if the
#                                     cloud kernel lacks kvm-amd)
#   build/cache/pkgs/PKG_ARCH/...     Debian's U-Boot builds for the boards
#                                     (arm64: u-boot-rockchip, u-boot-rpi,
#                                     grub-efi-arm64-signed's monolithic
#                                     GRUB, which U-Boot boots from a firmware
#                                     guest's EFI system partition, and
#                                     the Pi's VideoCore firmware,
#                                     raspi-firmware, from the non-free-firmware
#                                     component through an apt state of its
#                                     own; armhf: u-boot-sunxi, u-boot-exynos),
#                                     as `tandem image build` unpacks them
#   build/cache/pkgs/u-boot-qemu-trixie_all/...
#                                     Debian trixie's u-boot-qemu: its
#                                     qemu_arm64 build drives bochs-display
#   build/cache/qemu-arm64/root/...   Debian's arm64 qemu-system-aarch64 and the shared
#                                     libraries it needs, unpacked from their packages:
#                                     make bench runs it inside the emulated arm64 board
#   build/cache/rt-tests-arm64/root/...,
#   build/cache/rt-tests-amd64/root/...,
#   build/cache/stress-ng-arm64/root/...
#                                     Debian's arm64 (and amd64) cyclictest and arm64
#                                     stress-ng with their shared libraries, the same
#                                     way: the real-time guests' initramfs take them
#                                     from there
#   build/cache/swtpm-arm64/root/...  Debian's arm64 swtpm and its shared libraries, the
#                                     same way: the supervisor in the emulated arm64 host
#                                     runs it behind an arm64 guest's virtual TPM
#   build/cache/vncsnapshot-arm64/root/...  Debian's arm64 vncsnapshot and its shared
#                                     libraries, the same way: the display test saves the
#                                     dashboard with it from the VNC server in the emulated
#                                     arm64 host
#   build/cache/perf-arm64/root/...   Debian's arm64 perf (linux-perf) and its shared
#                                     libraries, the same way: an arm64 guest runs
#                                     `perf stat -e cycles true` with it
#
# Kernel package names carry an ABI number that moves with security updates,
# so they are resolved through the meta packages, never hard-coded.
#
# When nothing under /var/lib/apt/lists or dpkg's status and architectures
# changed since an architecture's stamp was written, the same queries would
# resolve the same packages: that architecture is up to date without asking
# apt, whose queries take seconds each where its binary cache is disabled.
#
# It needs root only to install missing tools and add foreign architectures;
# on a machine that has them, it runs as any user.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TANDEM_CACHE:-$root/build/cache}
debs=$cache/debs

# shellcheck source=scripts/aptcache.sh
. "$root/scripts/aptcache.sh"

log() { printf 'testdata: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else die "need root to run: $*"; fi
}

# apt_update refreshes the package index once per run. A hash-sum or size
# mismatch on one index (a mirror mid-sync) is not fatal: what matters is
# whether the packages then resolve, which the callers check.
updated=
apt_update() {
	[ -n "$updated" ] && return 0
	log "apt-get update"
	as_root apt-get update -qq || log "apt-get update reported errors; continuing"
	updated=1
}

# need_tools installs the Debian tools this script and the tests use,
# skipping the apt round trip when they are all present.
need_tools() {
	missing=
	command -v dpkg-deb >/dev/null || missing="$missing dpkg"
	command -v apt-get >/dev/null || die "apt-get not found: this script needs a Debian or Ubuntu machine"
	command -v qemu-system-x86_64 >/dev/null || missing="$missing qemu-system-x86"
	command -v qemu-system-aarch64 >/dev/null || missing="$missing qemu-system-arm"
	command -v cpio >/dev/null || missing="$missing cpio"
	command -v depmod >/dev/null || missing="$missing kmod"
	if [ -n "$missing" ]; then
		log "installing$missing"
		apt_update
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
	fi
}

# need_arch makes apt know about a foreign architecture (arm64, armhf).
need_arch() {
	a=$1
	[ "$a" = "$(dpkg --print-architecture)" ] && return 0
	if ! dpkg --print-foreign-architectures | grep -qx "$a"; then
		log "adding dpkg architecture $a"
		as_root dpkg --add-architecture "$a"
		updated=
	fi
	# Resolving a package of that architecture proves its index is there.
	if ! apt_cache show "busybox-static:$a" >/dev/null 2>&1; then
		apt_update
	fi
}

# resolve META [SUITE] prints the versioned kernel package a meta package
# depends on, in SUITE's version of it when one is given (bookworm-backports
# for the 6.12 kernels; the versioned package it names exists only there, so
# download's candidate is that suite's without asking for it again).
resolve() {
	if [ -n "${2:-}" ]; then
		name=$(apt_cache -t "$2" depends "$1" 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}')
		case $name in
		linux-image-6.1.*) die "$1 resolves to $name, not $2's: add $2 to apt's sources (scripts/deps.sh does) and run apt-get update" ;;
		esac
	else
		name=$(apt_cache depends "$1" 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}')
	fi
	[ -n "$name" ] || die "cannot resolve $1 through apt-cache depends: is the package index current (apt-get update)?"
	echo "$name"
}

# download PKG prints the path of PKG's .deb in $debs, fetching it once.
download() {
	pkg=$1
	ver=$(apt_cache policy "$pkg" | awk '/Candidate:/{print $2; exit}')
	[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no candidate version for $pkg"
	mkdir -p "$debs"
	# apt-get download names files NAME_VERSION_ARCH.deb with ':' escaped as %3a.
	base=${pkg%%:*}
	case $pkg in *:*) parch=${pkg#*:} ;; *) parch=$(dpkg --print-architecture) ;; esac
	ever=$(echo "$ver" | sed 's/:/%3a/g')
	f=$(ls "$debs/${base}_${ever}_${parch}.deb" 2>/dev/null || true)
	if [ -z "$f" ]; then
		log "downloading $pkg $ver"
		# As root, apt drops to the _apt user, who cannot write into the
		# cache; downloading as root itself avoids a warning per file.
		sandbox=
		[ "$(id -u)" = 0 ] && sandbox="-o APT::Sandbox::User=root"
		(cd "$debs" && apt-get download -q $bincache $sandbox "$pkg=$ver" >&2) || die "apt-get download $pkg=$ver failed"
		f=$(ls "$debs/${base}_${ever}_${parch}.deb")
	fi
	echo "$f"
}

# download_all PKG... prints the paths of the PKGs' .debs in $debs, one a
# line: download's work for many packages at once, with one apt-cache query
# for their versions and one apt-get download for those not there yet (a
# query or a download per package costs seconds each, and a program's
# libraries are dozens of packages).
download_all() {
	[ $# -gt 0 ] || return 0
	native=$(dpkg --print-architecture)
	# "NAME[:ARCH] VERSION" for each package apt knows; a package of the
	# machine's own architecture is named without its ARCH.
	vers=$(apt_cache policy "$@" 2>/dev/null | awk '/^[^ ].*:$/{name=substr($0, 1, length($0)-1); next} /^  Candidate:/{print name, $2}')
	mkdir -p "$debs"
	fetch= files=
	for pkg in "$@"; do
		base=${pkg%%:*}
		ver=$(echo "$vers" | awk -v p="$pkg" -v b="$base" '$1 == p {v = $2; exit} $1 == b && v == "" {v = $2} END {print v}')
		[ -n "$ver" ] && [ "$ver" != "(none)" ] || die "no candidate version for $pkg"
		ever=$(echo "$ver" | sed 's/:/%3a/g')
		# The file's architecture is the package's: PKG's, or all.
		case $pkg in *:*) parch=${pkg#*:} ;; *) parch=$native ;; esac
		f="$debs/${base}_${ever}_${parch}.deb"
		[ -f "$f" ] || [ ! -f "$debs/${base}_${ever}_all.deb" ] || f="$debs/${base}_${ever}_all.deb"
		files="$files $f"
		[ -f "$f" ] || fetch="$fetch $pkg=$ver"
	done
	if [ -n "$fetch" ]; then
		log "downloading$fetch"
		sandbox=
		[ "$(id -u)" = 0 ] && sandbox="-o APT::Sandbox::User=root"
		# shellcheck disable=SC2086
		(cd "$debs" && apt-get download -q $bincache $sandbox $fetch >&2) || die "apt-get download failed for:$fetch"
	fi
	for f in $files; do
		# An arch-independent package's file says all.
		[ -f "$f" ] || f="${f%_*.deb}_all.deb"
		[ -f "$f" ] || die "apt-get download left no $f"
		echo "$f"
	done
}

# unpack_kernel DEB DEST writes DEST/vmlinuz, DEST/release, DEST/modules/.
unpack_kernel() {
	deb=$1 dest=$2
	tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
	log "unpacking $(basename "$deb")"
	dpkg-deb -x "$deb" "$tmp"
	kimg=$(ls "$tmp"/boot/vmlinuz-* | head -n1)
	[ -f "$kimg" ] || die "$deb has no boot/vmlinuz-*"
	rel=${kimg##*/vmlinuz-}
	mods=$tmp/lib/modules/$rel
	[ -d "$mods" ] || mods=$tmp/usr/lib/modules/$rel
	[ -d "$mods" ] || die "$deb has no modules tree for $rel"
	# The package ships no modules.dep (depmod runs at install); generate it
	# when depmod is there, so guests can load modules in dependency order.
	if [ ! -f "$mods/modules.dep" ] && command -v depmod >/dev/null; then
		depmod -b "${mods%/lib/modules/$rel}" "$rel" 2>/dev/null || \
			depmod -b "${mods%/usr/lib/modules/$rel}" "$rel"
	fi
	[ -f "$mods/modules.dep" ] || die "no modules.dep for $rel: install kmod (depmod)"
	rm -rf "$dest.new"
	mkdir -p "$dest.new/modules"
	mv "$kimg" "$dest.new/vmlinuz"
	cfg=$(ls "$tmp"/boot/config-* 2>/dev/null | head -n1)
	[ -f "$cfg" ] || die "$deb has no boot/config-*"
	mv "$cfg" "$dest.new/config-$rel"
	mv "$mods" "$dest.new/modules/$rel"
	# DTBs (arm) live beside the modules.
	if [ -d "$tmp/usr/lib/linux-image-$rel" ]; then mv "$tmp/usr/lib/linux-image-$rel" "$dest.new/dtbs"; fi
	echo "$rel" >"$dest.new/release"
	rm -rf "$tmp"
	# Swap the new tree in; keep a host/ subtree that was unpacked separately.
	if [ -d "$dest/host" ]; then mv "$dest/host" "$dest.new/host"; fi
	rm -rf "$dest"
	mv "$dest.new" "$dest"
}

# unpack_busybox DEB DEST writes DEST/busybox.
unpack_busybox() {
	deb=$1 dest=$2
	tmp=$(mktemp -d "$cache/.unpack.XXXXXX")
	dpkg-deb -x "$deb" "$tmp"
	mkdir -p "$dest"
	install -m 0755 "$tmp/bin/busybox" "$dest/busybox.new"
	mv "$dest/busybox.new" "$dest/busybox"
	rm -rf "$tmp"
}

# has_kvm_amd DIR reports whether the kernel unpacked in DIR ships kvm-amd.
has_kvm_amd() {
	rel=$(cat "$1/release")
	grep -q 'kvm-amd\.ko' "$1/modules/$rel/modules.dep"
}

# has_config DIR reports whether the kernel unpacked in DIR has its .config.
has_config() {
	[ -f "$1/config-$(cat "$1/release" 2>/dev/null)" ]
}

# extract_config DEB DEST writes the kernel package's boot/config-* to DEST.
extract_config() {
	rel=$(cat "$2/release")
	dpkg-deb --fsys-tarfile "$1" | tar -xO "./boot/config-$rel" >"$2/config-$rel.new" ||
		die "$1 has no boot/config-$rel"
	mv "$2/config-$rel.new" "$2/config-$rel"
}

# unpack_pkg DEB NAME ARCH writes the package's files to
# $cache/pkgs/NAME_ARCH, where `tandem image build` looks for a board's
# Debian blobs.
unpack_pkg() {
	deb=$1 dest=$cache/pkgs/$2_$3
	stamp=$dest/.stamp
	[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(basename "$deb")" ] && return 0
	mkdir -p "$cache/pkgs"
	tmp=$(mktemp -d "$cache/pkgs/.unpack.XXXXXX")
	dpkg-deb -x "$deb" "$tmp"
	basename "$deb" >"$tmp/.stamp"
	rm -rf "$dest"
	mv "$tmp" "$dest"
	log "$3: $2 unpacked in $dest"
}

# boot_pkgs_armhf fetches the U-Boot builds the A20 and Arndale images
# take from Debian.
boot_pkgs_armhf() {
	for p in u-boot-sunxi u-boot-exynos; do
		unpack_pkg "$(download "$p:armhf")" "$p" armhf
	done
}

# boot_pkgs fetches what the arm64 board images and `bsp import --uboot`
# take from Debian: U-Boot for the Rockchip and Raspberry Pi boards, and
# the Raspberry Pi's firmware; and GRUB for arm64 EFI, which the e2e
# tests put on a firmware guest's EFI system partition. raspi-firmware is in the non-free-firmware
# component, which the machine's sources need not list: it is resolved
# and downloaded through an apt state of its own under the cache.
boot_pkgs() {
	for p in u-boot-rockchip u-boot-rpi grub-efi-arm64-signed; do
		unpack_pkg "$(download "$p:arm64")" "$p" arm64
	done
	st=$cache/apt-nonfree
	mkdir -p "$st/lists/partial" "$st/archives/partial"
	echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm non-free-firmware" >"$st/sources.list"
	opts="-o Dir::Etc::SourceList=$st/sources.list -o Dir::Etc::SourceParts=/nonexistent -o Dir::State::Lists=$st/lists -o Dir::Cache=$st -o Dir::Cache::archives=$st/archives"
	[ "$(id -u)" = 0 ] && opts="$opts -o APT::Sandbox::User=root"
	if [ -z "$(ls "$debs"/raspi-firmware_*_all.deb 2>/dev/null)" ]; then
		log "downloading raspi-firmware (non-free-firmware)"
		apt-get $opts update -qq || die "apt-get update for non-free-firmware failed"
		mkdir -p "$debs"
		(cd "$debs" && apt-get $opts download -q raspi-firmware >&2) || die "apt-get download raspi-firmware failed"
	fi
	unpack_pkg "$(ls "$debs"/raspi-firmware_*_all.deb | tail -n1)" raspi-firmware arm64
}

# uboot_qemu_trixie fetches Debian trixie's u-boot-qemu, whose qemu_arm64
# build drives QEMU's bochs-display (bookworm's drives no display): the
# firmware `make demo` boots the QEMU virt board with, so that the host
# kernel gets the board's screen as /dev/fb0 (efifb, through bootefi's
# EFI GOP). Resolved and downloaded through an apt state of its own under
# the cache, as trixie need not be among the machine's sources.
uboot_qemu_trixie() {
	st=$cache/apt-trixie
	mkdir -p "$st/lists/partial" "$st/archives/partial"
	echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$st/sources.list"
	opts="-o Dir::Etc::SourceList=$st/sources.list -o Dir::Etc::SourceParts=/nonexistent -o Dir::State::Lists=$st/lists -o Dir::Cache=$st -o Dir::Cache::archives=$st/archives"
	[ "$(id -u)" = 0 ] && opts="$opts -o APT::Sandbox::User=root"
	if [ -z "$(ls "$st"/u-boot-qemu_*_all.deb 2>/dev/null)" ]; then
		log "downloading trixie's u-boot-qemu"
		apt-get $opts update -qq || die "apt-get update for trixie failed"
		(cd "$st" && apt-get $opts download -q u-boot-qemu >&2) || die "apt-get download u-boot-qemu (trixie) failed"
	fi
	unpack_pkg "$(ls "$st"/u-boot-qemu_*_all.deb | tail -n1)" u-boot-qemu-trixie all
}

# index_unchanged DIR reports whether DIR/.stamp is newer than apt's
# package index and dpkg's state: the queries that wrote it would resolve
# the same packages again.
index_unchanged() {
	[ -f "$1/.stamp" ] || return 1
	for f in /var/lib/apt/lists /var/lib/dpkg/status /var/lib/dpkg/arch; do
		[ -e "$f" ] || continue
		[ -z "$(find "$f" -maxdepth 1 -newer "$1/.stamp" | head -n1)" ] || return 1
	done
}

# setup ARCH DEBARCH KERNEL_META HOST_META BUSYBOX [SUITE]
setup() {
	arch=$1 debarch=$2 kmeta=$3 hostmeta=$4 withbusybox=$5 suite=${6:-}
	dest=$cache/$arch
	if index_unchanged "$dest" && has_config "$dest" && { [ -z "$hostmeta" ] || has_kvm_amd "$dest" || index_unchanged "$dest/host"; }; then
		log "$arch: up to date ($(cat "$dest/release"); the package index has not changed since it was unpacked)"
		return 0
	fi
	need_arch "$debarch"
	kpkg=$(resolve "$kmeta" "$suite")
	case $kpkg in *:*) ;; *) [ "$debarch" = "$(dpkg --print-architecture)" ] || kpkg=$kpkg:$debarch ;; esac
	kdeb=$(download "$kpkg")
	bdeb=
	[ "$withbusybox" = yes ] && bdeb=$(download "busybox-static:$debarch")
	stamp="$(basename "$kdeb") $(basename "${bdeb:-none}")"
	if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$stamp" ]; then
		touch "$dest/.stamp" # checked against the index as it is now
		# A cache unpacked before the config was kept gets it now.
		has_config "$dest" || extract_config "$kdeb" "$dest"
		log "$arch: up to date ($(cat "$dest/release"))"
	else
		unpack_kernel "$kdeb" "$dest"
		[ -n "$bdeb" ] && unpack_busybox "$bdeb" "$dest"
		echo "$stamp" >"$dest/.stamp"
		log "$arch: kernel $(cat "$dest/release") ready in $dest"
	fi
	# The emulated host needs kvm and kvm-amd; a guest kernel that has them
	# serves as the host kernel too, which saves a download.
	if [ -n "$hostmeta" ]; then
		if has_kvm_amd "$dest"; then
			rm -rf "$dest/host"
			log "$arch: guest kernel has kvm-amd: it is the host kernel too"
		else
			hpkg=$(resolve "$hostmeta")
			hdeb=$(download "$hpkg")
			if [ ! -f "$dest/host/.stamp" ] || [ "$(cat "$dest/host/.stamp")" != "$(basename "$hdeb")" ]; then
				unpack_kernel "$hdeb" "$dest/host"
				echo "$(basename "$hdeb")" >"$dest/host/.stamp"
			else
				touch "$dest/host/.stamp"
			fi
			has_kvm_amd "$dest/host" || die "$hpkg has no kvm-amd module either"
			log "$arch: host kernel $(cat "$dest/host/release") ready in $dest/host"
		fi
	fi
}

# lib_closure DEBARCH PKG... prints the DEBARCH library packages PKGs need,
# directly or through one another: the shared libraries a binary of PKG
# links. apt-cache names a dependency of the machine's own architecture
# without a suffix: it gets one here. Other dependencies (data,
# configuration, maintainer scripts' tools) are left out: nothing here is
# installed, only unpacked for one binary.
lib_closure() {
	la=$1
	shift
	todo=$* seen=
	# One apt-cache query a level of the dependency tree, for all of it.
	while [ -n "$todo" ]; do
		next=
		# shellcheck disable=SC2086
		for d in $(apt_cache depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances $todo 2>/dev/null |
			sed -n "s/^ *|\{0,1\}Depends: \(\(lib\|zlib\)[^ <>:]*\)\(:$la\)\{0,1\}\$/\1:$la/p" | sort -u); do
			case " $seen " in *" $d "*) continue ;; esac
			seen="$seen $d"
			next="$next $d"
		done
		todo=$next
	done
	echo $seen
}

# setup_root NAME DEBARCH BIN PKG... unpacks the DEBARCH packages PKGs
# (named with their :DEBARCH) and the libraries they need into
# $cache/NAME/root, which must then hold BIN.
setup_root() {
	name=$1 rarch=$2 bin=$3
	shift 3
	pkgs=$*
	dest=$cache/$name
	if index_unchanged "$dest"; then
		log "$name: up to date (the package index has not changed since it was unpacked)"
		return 0
	fi
	need_arch "$rarch"
	# shellcheck disable=SC2046,SC2086
	files=$(download_all $pkgs $(lib_closure "$rarch" $pkgs))
	stamp=$(for f in $files; do basename "$f"; done | sort | tr '\n' ' ')
	if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$stamp" ]; then
		touch "$dest/.stamp"
		log "$name: up to date"
		return 0
	fi
	rm -rf "$dest.new"
	mkdir -p "$dest.new/root"
	for f in $files; do
		dpkg-deb -x "$f" "$dest.new/root"
	done
	[ -x "$dest.new/root/$bin" ] || die "$pkgs: no $bin"
	echo "$stamp" >"$dest.new/.stamp"
	rm -rf "$dest"
	mv "$dest.new" "$dest"
	log "$name: $(echo $files | wc -w) packages unpacked in $dest/root"
}

main() {
	[ $# -gt 0 ] || set -- x86
	need_tools
	mkdir -p "$cache"
	for a in "$@"; do
		case $a in
		x86) setup x86 amd64 linux-image-cloud-amd64 linux-image-amd64 yes ;;
		# The cloud kernel has no DRM: the x86 display test's guest is
		# the generic one, whose virtio_gpu is a module.
		x86-generic) setup x86-generic amd64 linux-image-amd64 "" yes ;;
		# The arm64 kernel has KVM built in and serves as host and guest.
		arm64) setup arm64 arm64 linux-image-arm64:arm64 "" yes; boot_pkgs ;;
		armhf) setup armhf armhf linux-image-armmp-lpae:armhf "" no; boot_pkgs_armhf ;;
		# Debian's cloud arm64 kernel builds tpm_tis (its arm64 kernel
		# does not): the QEMU virt board's host with a TPM.
		# Linux 6.12 guests: the e2e tests boot each architecture's
		# guest with 6.1 and 6.12. The emulated hosts keep 6.1.
		x86-6.12) setup x86-6.12 amd64 linux-image-cloud-amd64 "" yes bookworm-backports ;;
		arm64-6.12) setup arm64-6.12 arm64 linux-image-arm64:arm64 "" yes bookworm-backports ;;
		armhf-6.12) setup armhf-6.12 armhf linux-image-armmp-lpae:armhf "" no bookworm-backports ;;
		# Debian's PREEMPT_RT arm64 kernel: the real-time control guest.
		arm64-rt) setup arm64-rt arm64 linux-image-rt-arm64:arm64 "" yes ;;
		rt-tests-arm64) setup_root rt-tests-arm64 arm64 usr/bin/cyclictest rt-tests:arm64 ;;
		# Debian's PREEMPT_RT amd64 kernel: the same guest on the x86 host.
		x86-rt) setup x86-rt amd64 linux-image-rt-amd64 "" yes ;;
		rt-tests-amd64) setup_root rt-tests-amd64 amd64 usr/bin/cyclictest rt-tests:amd64 ;;
		stress-ng-arm64) setup_root stress-ng-arm64 arm64 usr/bin/stress-ng stress-ng:arm64 ;;
		arm64-cloud) setup arm64-cloud arm64 linux-image-cloud-arm64:arm64 "" no ;;
		u-boot-qemu-trixie) uboot_qemu_trixie ;;
		qemu-arm64) setup_root qemu-arm64 arm64 usr/bin/qemu-system-aarch64 qemu-system-arm:arm64 ;;
		# swtpm's own libraries are in swtpm-libs, a name lib_closure
		# does not follow.
		swtpm-arm64) setup_root swtpm-arm64 arm64 usr/bin/swtpm swtpm:arm64 swtpm-libs:arm64 ;;
		vncsnapshot-arm64) setup_root vncsnapshot-arm64 arm64 usr/bin/vncsnapshot vncsnapshot:arm64 ;;
		perf-arm64) setup_root perf-arm64 arm64 usr/bin/perf linux-perf:arm64 ;;
		*) die "unknown architecture $a (want x86, x86-generic, arm64, armhf, x86-6.12, arm64-6.12, armhf-6.12, arm64-cloud, arm64-rt, rt-tests-arm64, x86-rt, rt-tests-amd64, stress-ng-arm64, u-boot-qemu-trixie, qemu-arm64, swtpm-arm64, vncsnapshot-arm64 or perf-arm64)" ;;
		esac
	done
}

main "$@"
