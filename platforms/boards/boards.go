// Package boards holds Tandem's built-in board profiles as files: one
// directory per board, named after it, with its board.yaml (the format
// platforms.Load reads from a vendor's board directory), embedded into the
// binary. platforms/all loads them.
//
// A built-in board names Debian's DTB (the kernel package's path, or a
// QEMU dump under qemu/) rather than carrying a copy.
package boards

import "embed"

// FS holds NAME/board.yaml for every built-in board.
//
//go:embed */board.yaml
var FS embed.FS
