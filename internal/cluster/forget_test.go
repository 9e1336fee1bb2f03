package cluster

import "testing"

func TestForgetEncoding(t *testing.T) {
	for _, f := range []Forget{{}, {UserID: 1}, {UserID: 1 << 40}} {
		got, err := decodeForget(f.encode())
		if err != nil || got != f {
			t.Errorf("decode(encode(%+v)) = %+v, %v", f, got, err)
		}
	}
	for _, bad := range []string{"", "u", "u0", "u-3", "ux", "3", "app", "u1 "} {
		if f, err := decodeForget([]byte(bad)); err == nil {
			t.Errorf("decode(%q) = %+v, want an error", bad, f)
		}
	}
}
