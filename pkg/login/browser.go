package login

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// CommandBrowser returns a Browser that runs command with the URL as its last
// argument (--browser-command). command is split on spaces, without shell
// quoting: "chromium --incognito" runs chromium with two arguments. The
// command is started, not waited for.
func CommandBrowser(command string) (func(url string) error, error) {
	argv := strings.Fields(command)
	if len(argv) == 0 {
		return nil, errors.New("--browser-command is empty")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("--browser-command %q: %w", argv[0], err)
	}
	return func(url string) error {
		cmd := exec.Command(path, append(argv[1:], url)...) // #nosec G204 -- the user's own command
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", argv[0], err)
		}
		go func() { _ = cmd.Wait() }()
		return nil
	}, nil
}
