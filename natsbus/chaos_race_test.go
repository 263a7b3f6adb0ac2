//go:build race

package natsbus

// raceEnabled: the race detector is on (the chaos runs take a smaller size).
const raceEnabled = true
