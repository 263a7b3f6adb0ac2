// Package benchmarks compares github.com/whalesong/bus with other Go event
// buses on the same scenarios, payload and machine. It is a separate module
// so that the library's go.mod stays small; everything is in its _test.go
// files. See ../BENCHMARKS.md for the commands and the figures.
package benchmarks
