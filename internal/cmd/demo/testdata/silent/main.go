// Command silent is the /init of the demo's silent guests
// (options.SilentGuests): it prints nothing and sleeps, so the demo must
// fail for want of the guests' markers.
package main

import "time"

func main() {
	for {
		time.Sleep(time.Hour)
	}
}
