package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// liveMem is the server's Go heap and goroutine stacks in use right after
// a garbage collection: what its connections hold, without the garbage
// (Argon2id's 19 MiB per login, say) and free pages RSS also counts.
type liveMem struct {
	Heap, Stacks float64 // bytes
}

// readLiveMem asks the server's --metrics listener for a heap profile
// with ?gc=1 (which collects first; the profile itself is thrown away),
// then reads magpie_heap_inuse_bytes and magpie_stack_inuse_bytes.
func readLiveMem(ctx context.Context, hc *http.Client, addr string) (liveMem, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	base = strings.TrimSuffix(strings.TrimRight(base, "/"), "/metrics")
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return liveMem{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return liveMem{}, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return liveMem{}, fmt.Errorf("GET %s/debug/pprof/heap?gc=1: HTTP %d", base, resp.StatusCode)
	}
	m, err := scrapeMetrics(ctx, hc, base)
	if err != nil {
		return liveMem{}, err
	}
	h, ok1 := m["magpie_heap_inuse_bytes"]
	s, ok2 := m["magpie_stack_inuse_bytes"]
	if !ok1 || !ok2 {
		return liveMem{}, fmt.Errorf("metrics: magpie_heap_inuse_bytes or magpie_stack_inuse_bytes missing (server too old?)")
	}
	return liveMem{Heap: h, Stacks: s}, nil
}
