//go:build !faulthooks

package crashpoint

// Enabled reports whether this is a faulthooks build.
const Enabled = false

// Reached marks point name (a no-op without the faulthooks tag).
func Reached(string) {}

// Armed reports whether MAGPIE_CRASHPOINT names point name (always false
// without the faulthooks tag).
func Armed(string) bool { return false }
