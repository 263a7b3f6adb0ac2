package nodetest

import (
	"errors"
	"slices"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseMajor(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"v20.20.2\n", 20, false},
		{"v22.1.0", 22, false},
		{"v24.0.0-nightly", 24, false},
		{"20.1.0", 0, true},
		{"vx.1", 0, true},
		{"v0.1", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseMajor(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseMajor(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !errors.Is(err, errVersion) {
			t.Errorf("parseMajor(%q) error %v does not wrap errVersion", tt.in, err)
		}
	}
	if got := flagsFor(20); !slices.Contains(got, "--experimental-websocket") {
		t.Errorf("flagsFor(20) = %v, want --experimental-websocket", got)
	}
	if got := flagsFor(24); len(got) != 0 {
		t.Errorf("flagsFor(24) = %v, want none", got)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_, _ = b.Write([]byte("x"))
		}
	}()
	_ = b.String() // concurrently with the writer: -race checks the lock
	<-done
	if got := len(b.String()); got != 100 {
		t.Fatalf("%d bytes, want 100", got)
	}
}
