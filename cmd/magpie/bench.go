package main

import (
	"context"
	"io"

	"github.com/magpie-im/magpie/internal/bench"
)

// runBench is `magpie bench`: the load generator (internal/bench).
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return bench.Run(ctx, args, stdout, stderr)
}
