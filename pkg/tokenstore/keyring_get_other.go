//go:build !linux

package tokenstore

import "github.com/zalando/go-keyring"

// systemGet is go-keyring's Get; Linux has a faster path (keyring_get_linux.go).
func systemGet(service, user string) (string, error) { return keyring.Get(service, user) }
