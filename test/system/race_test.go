//go:build race

package system

// raceEnabled builds the binary under test with -race when the tests run with it.
const raceEnabled = true
