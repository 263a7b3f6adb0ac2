package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTour runs the tour and checks that it tells what it promises: the
// wildcard subscriber sees the created orders, the resumed one catches up
// on exactly what it missed, and nothing is left running.
func TestTour(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	out := make(chan string)
	go func() {
		var buf bytes.Buffer
		io.Copy(&buf, r)
		out <- buf.String()
	}()
	main()
	os.Stdout = stdout
	w.Close()
	got := <-out
	for _, want := range []string{
		"[created] #1 orders.eu.created",
		"[created] #3 orders.us.created",
		"After(2): recovered=true",
		"[audit]   #3 orders.us.created",
		"[audit]   #6 orders.eu.created",
		"published=6",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
