//go:build !cgo

package sandbox

// libcThreads: a static Go program starts its threads itself, with clone
// (GoRuntime); it needs nothing of the C library's.
var libcThreads []Rule
