package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/emulate"
	"github.com/tandem-hv/tandem/internal/e2e"
)

// tailLines is how many of a guest's last console lines a failure shows.
const tailLines = 15

// uBootScript is U-Boot's line as it runs boot.scr: Debian bookworm's
// U-Boot says the first, trixie's (the demo's, bootflows) the second.
const uBootScript = `Found U-Boot script|Booting bootflow '[^']*' with script`

// stages are the boot's milestones, in order, as the console shows them
// (match is a regexp); name is the summary's row.
var stages = []struct{ key, match, say, name string }{
	{"script", uBootScript, "U-Boot found boot.scr on the boot partition, running it…", "U-Boot found boot.scr"},
	{"kernel", "Tandem: starting the host", "booting the host kernel (tandem as init)…", "host kernel started"},
	{"data", "tandem init: data partition", "data partition mounted…", "data partition mounted"},
	{"system", "tandem init: starting tandem system", "starting tandem system: control and infotainment guests…", "system started"},
	{"markers", "tandem init: tandem.until markers reached", "both guests printed their markers…", "markers reached"},
	{"screen1", "tandem init: board screen 1:", "the board's screen shows the infotainment guest's dashboard: saving it (QEMU's screendump)…", "board screen saved"},
	{"killed", "tandem init: tandem.kill: killed", "the control guest's VMM is killed (SIGKILL): the dashboard says the messages stopped, the supervisor restarts it…", "control killed"},
	{"back", "tandem init: tandem.kill: control is back", "the control guest runs again and publishes: the dashboard is live again…", "control back"},
	{"screen2", "tandem init: board screen 2:", "saving the board's screen again; then the status table and the system stops…", "screen saved again"},
	{"deadline", "tandem init: tandem.runfor=", "tandem.runfor is up before the guests' markers came: status table, then stopping the system…", "deadline, no markers"},
	{"attest", "tandem init: attest: ", "tandem init compared the board's TPM (PCR 15 and the event log) with the image's prediction…", "TPM attested"},
	{"poweroff", "reboot: Power down", "powering off…", "powered off"},
}

// stageRes are the stages' matches, compiled.
var stageRes = func() []*regexp.Regexp {
	var l []*regexp.Regexp
	for _, s := range stages {
		l = append(l, regexp.MustCompile(s.match))
	}
	return l
}()

var (
	// The status table `tandem ps` prints: NAME ROLE STATE PID UPTIME RESTARTS ….
	statusHeader = regexp.MustCompile(`^NAME\s+ROLE\s+STATE\s+PID\s+UPTIME\s+RESTARTS`)
	statusRow    = regexp.MustCompile(`^(\S+)\s+\S+\s+\S+\s+\d+\s+\S+\s+(\d+)\s`)
	// The guests' reports (guests/control, guests/infotainment).
	controlReport = regexp.MustCompile(`^TANDEM-CONTROL misses=(\d+) p50-us=(\d+) p99-us=(\d+) max-us=(\d+) cycles=(\d+) sent=(\d+) dropped=(\d+)`)
	infoReport    = regexp.MustCompile(`^TANDEM-INFO received=(\d+) faults=(\d+) `)
)

// watcher passes the serial console through, announces each boot stage
// as its first line appears, and keeps what the verdict and the summary
// need: each guest's console lines, its last report, and the restarts
// the status table shows. Whether the markers came is tandem emulate's
// verdict (the run's Result).
type watcher struct {
	built    time.Duration            // when the image was built (QEMU's start)
	at       map[string]time.Duration // stage key: when its line came, since the demo's start
	tail     map[string][]string      // guest: its last console lines, as shown (NAME | …)
	own      map[string]int           // guest: how many lines it printed itself
	report   map[string][]string      // guest: the submatches of its last report
	restarts map[string]int           // guest: from the status table
	inTable  bool
}

func newWatcher() *watcher {
	return &watcher{built: time.Since(start0), at: map[string]time.Duration{}, tail: map[string][]string{},
		own: map[string]int{}, report: map[string][]string{}, restarts: map[string]int{}}
}

// line takes one line of the console.
func (w *watcher) line(l string) {
	if emulate.IsScreenData(l) {
		return // a picture on its way out, for the screen files
	}
	fmt.Fprintln(out, l)
	for i, s := range stages {
		if !w.reached(s.key) && stageRes[i].MatchString(l) {
			w.at[s.key] = time.Since(start0)
			stage("%s", s.say)
		}
	}
	switch {
	case statusHeader.MatchString(l):
		w.inTable = true
		return
	case w.inTable:
		if m := statusRow.FindStringSubmatch(l); m != nil {
			w.restarts[m[1]], _ = strconv.Atoi(m[2])
			return
		}
		w.inTable = false
	}
	guest, text := emulate.SplitLine(l, guestNames())
	if guest == emulate.BoardConsole {
		return
	}
	t := append(w.tail[guest], l)
	if len(t) > tailLines {
		t = t[len(t)-tailLines:]
	}
	w.tail[guest] = t
	// The VMM's own last words (tandem: guest ended …) come on the
	// guest's console too; they are not the guest's.
	if strings.HasPrefix(text, "tandem:") {
		return
	}
	w.own[guest]++
	for _, re := range []*regexp.Regexp{controlReport, infoReport} {
		if m := re.FindStringSubmatch(text); m != nil {
			w.report[guest] = m
		}
	}
}

// guilty shows which marker m is missing and its guest's last lines.
func (w *watcher) guilty(m e2e.Marker) {
	t := w.tail[m.Guest]
	say := fmt.Sprintf("FAILED: %s never printed %s (%s)", m.Guest, m.Expr, m.What)
	switch {
	case len(t) == 0:
		stage("%s; its console shows nothing", say)
		return
	case len(t) == 1:
		say += "; its console's last line"
	default:
		say += fmt.Sprintf("; its console's last %d lines", len(t))
	}
	if w.own[m.Guest] == 0 {
		say += " (the VMM's: the guest itself printed nothing)"
	}
	stage("%s:", say)
	for _, l := range t {
		fmt.Fprintln(out, l)
	}
}

// reached reports whether the stage key's line came.
func (w *watcher) reached(key string) bool {
	_, ok := w.at[key]
	return ok
}

// faults is the infotainment guest's last reported fault count.
func (w *watcher) faults() int {
	r := w.report["infotainment"]
	if r == nil {
		return 0
	}
	n, _ := strconv.Atoi(r[2])
	return n
}

// summary prints the boot's stages with their times, the channel's
// figures, the restarts, and a line on each effect of the emulation that
// shows.
func (w *watcher) summary() {
	stage("summary")
	sec := func(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
	// took: since the row above.
	row := func(name, at, took string) { fmt.Fprintf(out, "%-24s %7s %7s\n", name, at, took) }
	row("stage", "at", "took")
	row("image built", sec(w.built), sec(w.built))
	prev := w.built
	for _, s := range stages {
		at, ok := w.at[s.key]
		switch {
		case ok:
			row(s.name, sec(at), sec(at-prev))
			prev = at
		case s.key != "deadline":
			row(s.name, "—", "—")
		}
	}
	info, ctl := w.report["infotainment"], w.report["control"]
	field := func(r []string, i int) string {
		if r == nil {
			return "— (no report)"
		}
		return r[i]
	}
	fmt.Fprintf(out, "messages received         %s\n", field(info, 1))
	fmt.Fprintf(out, "faults                    %s\n", field(info, 2))
	var rs []string
	total := 0
	for _, m := range markers {
		if n, ok := w.restarts[m.Guest]; ok {
			rs = append(rs, fmt.Sprintf("%s %d", m.Guest, n))
			total += n
		}
	}
	if rs == nil {
		rs = []string{"— (no status table)"}
	}
	fmt.Fprintf(out, "restarts                  %s\n", strings.Join(rs, ", "))
	if ctl != nil {
		fmt.Fprintf(out, "control loop              %s of %s cycles woke a period (1 ms) or more late; wake-up lateness in its last second p99 %s µs, max %s µs\n", ctl[1], ctl[5], ctl[3], ctl[4])
		if ctl[1] != "0" {
			fmt.Fprintln(out, "missed deadlines: the board is emulated in software on this machine (QEMU TCG runs the host and the guests inside it), so the control loop wakes late; on hardware it runs under KVM on its own pinned core at SCHED_FIFO, and the figures there are the ones to judge")
		}
	}
	if total > 0 {
		fmt.Fprintln(out, "restarts: the supervisor restarted a guest (its `tandem:` lines above say why); under software emulation a guest slowed enough can miss its watchdog")
	}
}
