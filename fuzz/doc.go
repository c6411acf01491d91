// Package fuzz holds the fuzz targets for every parser in pkgsync that reads untrusted bytes:
// control files (.zsync), HTTP Range replies, topology maps and the like. They live together, away
// from the packages they test, so that one place lists everything exposed to hostile input and one
// command runs any of it.
//
// Each target's seed corpus comes from testdata/ (and from f.Add calls); plain `go test ./fuzz`
// runs the seeds as ordinary tests. To fuzz one target, for example for 30 seconds:
//
//	go test ./fuzz -run='^$' -fuzz=FuzzX -fuzztime=30s
//
// Inputs that fail are written to testdata/fuzz/FuzzX/ and then run with the seeds every time.
package fuzz
