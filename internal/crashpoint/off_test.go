//go:build !faulthooks

package crashpoint

import "testing"

// A normal build ignores MAGPIE_CRASHPOINT: a release binary can never be
// made to crash itself.
func TestNormalBuildNeverCrashes(t *testing.T) {
	t.Setenv(Env, CommitPublish+":1")
	for range 3 {
		Reached(CommitPublish)
		Reached(PublishACK)
	}
	if Enabled || Armed(CommitPublish) || Armed(PublishACK) {
		t.Fatal("a build without -tags faulthooks has its crash points armed")
	}
}
