package bsp

import (
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// debianDTBs is where scripts/testdata.sh unpacks the DTBs of Debian's
// arm64 and armhf kernel packages (usr/lib/linux-image-*/), by Debian
// architecture.
func debianDTBs(arch string) string {
	return filepath.Join(repoRoot(), "build", "cache", arch, "dtbs")
}

// TestEveryDebianDTB is the porting kit's proof on real hardware
// descriptions: every board DTB Debian ships, arm64 and armhf, goes
// through what `tandem bsp import` reads and what `tandem bsp check` and
// `tandem board detect` say, and must come out with a verdict (hosts
// KVM, guest-only or cannot, with the reason), never an error or a
// panic. It logs the count of each verdict and of each reason; the
// README's table of them comes from this log (go test -v -run
// TestEveryDebianDTB ./bsp).
func TestEveryDebianDTB(t *testing.T) {
	type result struct {
		arch, file string
		v          Verdict
	}
	var results []result
	for _, arch := range []string{"arm64", "armhf"} {
		dir := debianDTBs(arch)
		testenv.RequireFile(t, dir, "run `make testdata` or scripts/testdata.sh "+arch)
		n := 0
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".dtb") {
				return err
			}
			n++
			if !testenv.Sampled(n - 1) {
				return nil
			}
			rel, _ := filepath.Rel(dir, p)
			v, err := judgeLikeTheCLI(p)
			if err != nil {
				t.Errorf("%s/%s: %v", arch, rel, err)
				return nil
			}
			results = append(results, result{arch, rel, v})
			return nil
		})
		if err != nil {
			t.Fatalf("walking %s: %v", dir, err)
		}
		if n == 0 {
			t.Fatalf("%s holds no .dtb files: rerun scripts/testdata.sh %s", dir, arch)
		}
	}

	// The counts, per architecture and verdict, then by reason.
	kinds := []Capability{HostsKVM, GuestOnly, Cannot}
	count := map[string]int{}
	reasons := map[string]int{}
	example := map[string]string{}
	for _, r := range results {
		count[r.arch+" "+string(r.v.Capability)]++
		count[string(r.v.Capability)]++
		if r.v.Reason != "" {
			k := fmt.Sprintf("%-16s %s", r.v.Capability, r.v.Reason)
			reasons[k]++
			example[k] = r.arch + "/" + r.file
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d Debian DTBs, every one with a verdict:\n", len(results))
	fmt.Fprintf(&sb, "| verdict | arm64 | armhf | all |\n|---|---:|---:|---:|\n")
	for _, k := range kinds {
		fmt.Fprintf(&sb, "| %s | %d | %d | %d |\n", k, count["arm64 "+string(k)], count["armhf "+string(k)], count[string(k)])
	}
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(reasons[b]-reasons[a], strings.Compare(a, b)) })
	sb.WriteString("reasons:\n")
	for _, k := range keys {
		fmt.Fprintf(&sb, "%5d  %s  (e.g. %s)\n", reasons[k], k, example[k])
	}
	t.Log(sb.String())
	for _, r := range results {
		if r.v.Reason == ReasonUnknownCores {
			t.Errorf("%s/%s: %v: add the core to the table in verdict.go", r.arch, r.file, r.v)
		}
	}
}

// judgeLikeTheCLI runs on one DTB what the porting kit's commands run:
// bsp import's fact reading and generator, the DTB check against the
// matching profile or against none, and the verdict. A panic is
// returned as an error naming the file.
func judgeLikeTheCLI(path string) (v Verdict, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	data, err := os.ReadFile(path)
	if err != nil {
		return Verdict{}, err
	}
	if _, err := Import(data, path, "debian-board"); err != nil {
		return Verdict{}, fmt.Errorf("bsp import: %w", err)
	}
	f, _, err := hostdt.ReadFile(path)
	if err != nil {
		return Verdict{}, fmt.Errorf("reading facts: %w", err)
	}
	b, _ := hostdt.Match(f, all.Boards()) // nil: no profile, checked alone
	s := CheckDTB(b, f)
	v = Judge(f)
	if !strings.HasPrefix(s.Verdict, v.String()) {
		return v, fmt.Errorf("CheckDTB verdict %q does not start with Judge's %q", s.Verdict, v)
	}
	switch {
	case v.Capability == HostsKVM && v.Reason != "":
		return v, fmt.Errorf("verdict %v gives a reason", v)
	case v.Capability != HostsKVM && !slices.Contains(allReasons, v.Reason):
		return v, fmt.Errorf("verdict %v: reason is not one of the Reason constants", v)
	case v.Capability == HostsKVM && !s.OK() && b == nil:
		return v, fmt.Errorf("verdict %v, but the DTB check fails: %v", v, failed(s))
	}
	return v, nil
}

var allReasons = []string{ReasonNoVirtCores, ReasonNoGIC, ReasonNoCPUs, ReasonUnknownCores, ReasonNoGICVirt,
	ReasonNoMaintenance, ReasonNoTimer, ReasonTimerNotOnGIC, ReasonNoVirtualTimer}

func failed(s Section) []string {
	var out []string
	for _, it := range s.Items {
		if !it.OK && !it.Advisory {
			out = append(out, it.Check+": "+it.Detail)
		}
	}
	return out
}
