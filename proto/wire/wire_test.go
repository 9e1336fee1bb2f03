package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestReadFrame(t *testing.T) {
	big := make([]byte, MaxFrame)
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr error
	}{
		{"one frame", AppendFrame(nil, []byte("hello")), []byte("hello"), nil},
		{"max size", AppendFrame(nil, big), big, nil},
		{"limit plus one", binary.BigEndian.AppendUint32(nil, MaxFrame+1), nil, ErrFrameTooLarge},
		{"huge length, no body", []byte{0x7f, 0xff, 0xff, 0xff}, nil, ErrFrameTooLarge},
		{"all ones", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, nil, ErrFrameTooLarge},
		{"zero length", []byte{0, 0, 0, 0}, nil, ErrEmptyFrame},
		{"truncated body", append(binary.BigEndian.AppendUint32(nil, 10), "abc"...), nil, io.ErrUnexpectedEOF},
		{"truncated header", []byte{0, 0}, nil, io.ErrUnexpectedEOF},
		{"nothing", nil, nil, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewReader(bytes.NewReader(tt.in), 0, 0).ReadFrame()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// A header that arrives one byte at a time must be waited for, not dropped.
func TestReadFrameOneByteAtATime(t *testing.T) {
	var in []byte
	in = AppendFrame(in, []byte("first"))
	in = AppendFrame(in, []byte("second"))
	r := NewReader(iotest.OneByteReader(bytes.NewReader(in)), 0, 0)
	for _, want := range []string{"first", "second"} {
		got, err := r.ReadFrame()
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
}

func TestValidators(t *testing.T) {
	tests := []struct {
		name string
		err  error
		ok   bool
	}{
		{"text ok", ValidText("hello ✓"), true},
		{"text empty", ValidText(""), false},
		{"text invalid utf8", ValidText("a\xffb"), false},
		{"text too long", ValidText(string(make([]byte, MaxText+1))), false},
		{"name ok", ValidName("alice_1-x"), true},
		{"name short", ValidName("a"), false},
		{"name dot", ValidName("al.ice"), false},
		{"name star", ValidName("al*"), false},
		{"name gt", ValidName("al>"), false},
		{"name space", ValidName("al ice"), false},
		{"name too long", ValidName("abcdefghijabcdefghijabcdefghijabc"), false},
		{"token ok", ValidToken("m-1.2_x", 64), true},
		{"token empty", ValidToken("", 64), false},
		{"token space", ValidToken("a b", 64), false},
		{"id ok", ValidID("m-1_x:y", 64), true},
		{"id dot", ValidID("m.1", 64), false},
		{"id star", ValidID("*", 64), false},
		{"id gt", ValidID("a>", 64), false},
		{"id space", ValidID("a b", 64), false},
		{"id empty", ValidID("", 64), false},
		{"token long", ValidToken("abcdef", 5), false},
	}
	for _, tt := range tests {
		if (tt.err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, tt.err, tt.ok)
		}
	}
}

func TestCodesAreNamedAndDense(t *testing.T) {
	codes := Codes()
	if len(codes) == 0 {
		t.Fatal("no codes")
	}
	for i, c := range codes {
		if c != Code(i+1) {
			t.Fatalf("code table has a hole before %d", c)
		}
		if c.String() == "unknown" {
			t.Fatalf("code %d has no name", c)
		}
	}
	if Code(9999).String() != "unknown" || Code(9999).Action() != GiveUp {
		t.Fatal("unknown code handling")
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, []byte("hello")))
	f.Add([]byte{0, 0, 0, 5, 'a'})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 0, 1024)
		for i := 0; i < 100; i++ {
			p, err := r.ReadFrame()
			if err != nil {
				return
			}
			if len(p) == 0 || len(p) > 1024 {
				t.Fatalf("frame of %d bytes passed the limit", len(p))
			}
		}
	})
}
