package files

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// The quota counts what is on disk from before a restart, frees what is
// deleted, and a refused upload leaves nothing behind.
func TestQuotaSurvivesRestartAndDelete(t *testing.T) {
	ctx := context.Background()
	u, dir := newUploads(t, 1<<20)
	if err := u.SetQuota(3000); err != nil {
		t.Fatal(err)
	}
	text := bytes.Repeat([]byte("a"), 1000)
	m, err := u.Save(ctx, 1, "a.txt", "", bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Save(ctx, 1, "b.txt", "", bytes.NewReader(text)); err != nil {
		t.Fatal(err)
	}

	// A new Uploads over the same directory, as after a restart.
	d, err := NewDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := NewUploads(d, 1<<20, []string{"text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if err := u2.SetQuota(3000); err != nil {
		t.Fatal(err)
	}
	if _, err := u2.Save(ctx, 1, "c.txt", "", bytes.NewReader(append(text, text...))); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("2000 bytes over 2000 used of 3000: %v, want ErrQuotaExceeded", err)
	}
	if got := leftovers(t, dir); len(got) != 0 {
		t.Fatalf("a refused upload left %v", got)
	}
	if _, err := u2.Save(ctx, 2, "c.txt", "", bytes.NewReader(append(text, text...))); err != nil {
		t.Fatalf("another owner: %v", err)
	}
	if err := u2.Delete(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := u2.Save(ctx, 1, "c.txt", "", bytes.NewReader(append(text, text...))); err != nil {
		t.Fatalf("after a delete freed 1000 bytes: %v", err)
	}
}
