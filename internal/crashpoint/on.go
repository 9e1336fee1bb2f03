//go:build faulthooks

package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Enabled reports whether this is a faulthooks build.
const Enabled = true

var (
	point string
	after int64
	count atomic.Int64
)

func init() {
	v := os.Getenv(Env)
	if v == "" {
		return
	}
	name, n, ok := strings.Cut(v, ":")
	k, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || k < 1 || (name != CommitPublish && name != PublishACK) {
		fmt.Fprintf(os.Stderr, "%s=%q: want %s:N or %s:N with N >= 1\n", Env, v, CommitPublish, PublishACK)
		os.Exit(2)
	}
	point, after = name, k
}

// Reached marks point name; the N-th time of the armed point kills the
// process.
func Reached(name string) {
	if name != point || count.Add(1) != after {
		return
	}
	fmt.Fprintf(os.Stderr, "crashpoint: %s reached %d times: SIGKILL\n", name, after)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way; run nothing more
}

// Armed reports whether MAGPIE_CRASHPOINT names point name.
func Armed(name string) bool { return name == point }
