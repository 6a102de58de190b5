#!/usr/bin/env bash
# Runs every fuzz target of the device models (hv/...) and of the fuzz
# input decoder they share, one after another, each for FUZZTIME (10m by
# default), and prints how many inputs each one ran. A target that finds
# a crasher fails the run; Go writes the input to the package's
# testdata/fuzz/<target>/, where it becomes a seed once the bug is fixed.
set -u
FUZZTIME=${FUZZTIME:-10m}
GO=${GO:-go}
cd "$(dirname "$0")/.."
status=0
summary=()
for file in $(grep -rl --include='*_test.go' '^func Fuzz' hv internal/devfuzz | sort); do
	pkg=./$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$file"); do
		log=$(mktemp)
		if $GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
			result=ok
		else
			result=FAILED
			status=1
			cat "$log"
		fi
		execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
		rm -f "$log"
		line=$(printf '%-8s %-28s %-28s %12s execs in %s' "$result" "$target" "$pkg" "${execs:-0}" "$FUZZTIME")
		echo "fuzz: $line"
		summary+=("$line")
	done
done
echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
exit $status
