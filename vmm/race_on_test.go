//go:build race

package vmm

// raceDetector says the tests run under the race detector (go test -race).
const raceDetector = true
