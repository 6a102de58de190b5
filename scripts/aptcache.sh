# aptcache.sh is sourced by the testdata scripts, after they set $cache.
# apt's binary cache of the package index. Docker-style images switch it
# off (Dir::Cache::pkgcache ""), and then every apt-cache query and apt-get
# download parses the whole index again: about 2 s each, dozens of times a
# run. One kept here makes each take milliseconds; apt checks it against
# the index and rebuilds it when the index changed.
bincache="-o Dir::Cache::pkgcache=$cache/apt-bincache/pkgcache.bin -o Dir::Cache::srcpkgcache=$cache/apt-bincache/srcpkgcache.bin"
apt_cache() {
	mkdir -p "$cache/apt-bincache"
	# shellcheck disable=SC2086
	apt-cache $bincache "$@"
}
