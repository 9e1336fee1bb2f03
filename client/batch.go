package client

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// sendManyConversations bounds how many conversations SendMany sends to at
// once.
const sendManyConversations = 8

// BatchError says which requests of a SendMany were not stored.
type BatchError struct {
	Errs []error // one per request, in order; nil for a stored one
}

func (e *BatchError) Error() string {
	n, first := 0, ""
	for i, err := range e.Errs {
		if err != nil {
			if n == 0 {
				first = fmt.Sprintf("message %d: %v", i, err)
			}
			n++
		}
	}
	return fmt.Sprintf("magpie: %d of %d messages not sent (%s)", n, len(e.Errs), first)
}

func (e *BatchError) Unwrap() []error {
	var errs []error
	for _, err := range e.Errs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// SendMany sends many messages in one call and returns their acks in the
// order of reqs. Messages to one conversation are sent one after another in
// the order given, so they are stored in that order; different
// conversations are sent to concurrently (up to 8 at once), over the one
// connection. Each is a Send, with its retries. After a message fails, the
// later ones to the same conversation are not sent (their order would
// break): they fail with the same error. The error is nil when every
// message was stored, else a *BatchError naming each failure; the acks of
// the stored ones are set either way.
func (c *Client) SendMany(ctx context.Context, reqs []SendRequest) ([]Ack, error) {
	acks := make([]Ack, len(reqs))
	errs := make([]error, len(reqs))
	var order []string
	byConv := map[string][]int{}
	for i, r := range reqs {
		key := "u:" + strings.ToLower(r.ToUser)
		switch {
		case r.ToGroup != "":
			key = "g:" + r.ToGroup
		case r.Broadcast:
			key = "b:"
		}
		if _, ok := byConv[key]; !ok {
			order = append(order, key)
		}
		byConv[key] = append(byConv[key], i)
	}
	sem := make(chan struct{}, sendManyConversations)
	var wg sync.WaitGroup
	for _, key := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func(idx []int) {
			defer func() { <-sem; wg.Done() }()
			var failed error
			for _, i := range idx {
				if failed != nil {
					errs[i] = failed
					continue
				}
				acks[i], errs[i] = c.Send(ctx, reqs[i])
				failed = errs[i]
			}
		}(byConv[key])
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return acks, &BatchError{Errs: errs}
		}
	}
	return acks, nil
}
