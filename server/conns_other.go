//go:build !unix

package server

// descriptorLimit is unknown outside Unix.
func descriptorLimit() int { return 0 }
