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
	// Every line under the heading it belongs to.
	sections := map[string][]string{
		"1.": {"[created] #1 orders.eu.created", "[created] #3 orders.us.created"},
		"2.": {"published #4 and #5"},
		"3.": {"After(2): recovered=true", "[audit]   #3 orders.us.created", "[audit]   #6 orders.eu.created"},
		"4.": {"[latest]  #3 orders.us.created", "[latest]  #6 orders.eu.created"},
		"5.": {"published=6"},
	}
	for heading, wants := range sections {
		section := sectionOf(got, heading)
		for _, want := range wants {
			if !strings.Contains(section, want) {
				t.Errorf("section %s lacks %q:\n%s", heading, want, got)
			}
		}
	}
}

// sectionOf returns the text from the line starting with heading to the
// next blank line.
func sectionOf(out, heading string) string {
	i := strings.Index(out, "\n"+heading)
	if i < 0 && strings.HasPrefix(out, heading) {
		i = 0
	}
	if i < 0 {
		return ""
	}
	rest := out[i:]
	if j := strings.Index(rest[1:], "\n\n"); j >= 0 {
		rest = rest[:j+1]
	}
	return rest
}
