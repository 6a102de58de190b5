#!/usr/bin/env bash
# Runs every fuzz target of the device models (hv/...) and of the fuzz
# input decoder they share, each for FUZZTIME (10m by default), and prints
# how many inputs each one ran. FUZZJOBS targets run at once (1 by
# default); each then gets its share of the machine's cores as fuzzing
# workers. FUZZRUN, a regular expression, picks targets by name. A target
# that finds a crasher fails the run; Go writes the input to the package's
# testdata/fuzz/<target>/, where it becomes a seed once the bug is fixed.
# A target starved of CPU can be reported as hung by Go's fuzzer: give
# each job a core of its own.
set -u
FUZZTIME=${FUZZTIME:-10m}
FUZZJOBS=${FUZZJOBS:-1}
FUZZRUN=${FUZZRUN:-.}
GO=${GO:-go}
cd "$(dirname "$0")/.."
workers=$(( $(nproc) / FUZZJOBS ))
[ "$workers" -ge 1 ] || workers=1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# fuzz_one PKG TARGET: runs one target and leaves its summary line in $out.
#
# Go's fuzzing coordinator (1.26 and before) can end a target that found
# nothing with a bare "context deadline exceeded" as -fuzztime runs out
# (go.dev/issue/75804: its deadline races the workers' shutdown). A run
# that failed with that message alone and wrote no new input under
# testdata/fuzz/TARGET/ found no crasher: it counts as ok, and says so.
fuzz_one() {
	local pkg=$1 target=$2 log="$out/$2.log" result=ok execs before after
	before=$(ls "$pkg/testdata/fuzz/$target" 2>/dev/null)
	if ! $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -parallel "$workers" "$pkg" >"$log" 2>&1; then
		after=$(ls "$pkg/testdata/fuzz/$target" 2>/dev/null)
		if [ "$before" = "$after" ] && grep -qx '    context deadline exceeded' "$log" &&
			[ "$(grep -c -e '^--- FAIL' -e '^    ' "$log")" -eq 2 ]; then
			result="ok"
			echo "fuzz: $target: Go's fuzzer ended it with its -fuzztime race (go.dev/issue/75804), no crasher written"
		else
			result=FAILED
			cat "$log"
		fi
	fi
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	printf '%-8s %-28s %-28s %12s execs in %s\n' "$result" "$target" "$pkg" "${execs:-0}" "$FUZZTIME" >"$out/$target.line"
	echo "fuzz: $(cat "$out/$target.line")"
}

targets=()
for file in $(grep -rl --include='*_test.go' '^func Fuzz' hv internal/devfuzz | sort); do
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$file" | grep -E -- "$FUZZRUN"); do
		targets+=("./$(dirname "$file") $target")
	done
done
# The packages are built once, before the targets race to build them.
$GO test -count=1 -run '^$' $(printf '%s\n' "${targets[@]}" | cut -d' ' -f1 | sort -u) >/dev/null
running=0
for t in "${targets[@]}"; do
	fuzz_one $t &
	running=$((running + 1))
	if [ "$running" -ge "$FUZZJOBS" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait
echo "fuzz: summary (${#targets[@]} targets, $FUZZJOBS at a time, $workers workers each)"
status=0
for t in "${targets[@]}"; do
	set -- $t
	line=$(cat "$out/$2.line" 2>/dev/null || echo "FAILED   $2 (no result)")
	echo "  $line"
	case $line in FAILED*) status=1 ;; esac
done
exit $status
