// Package browser opens URLs in the user's browser: the platform's opener
// ($BROWSER, open, xdg-open...) or a command the user names
// (--browser-command).
package browser

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Open starts the platform's URL opener. $BROWSER wins when set. The opener
// is started, not waited for.
func Open(url string) error {
	var name string
	var args []string
	switch {
	case os.Getenv("BROWSER") != "":
		name = os.Getenv("BROWSER")
	case runtime.GOOS == "darwin":
		name = "open"
	case runtime.GOOS == "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler"}
	default:
		name = "xdg-open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return errors.New("no browser opener found (" + name + "); use --no-browser or --browser-command")
	}
	cmd := exec.Command(path, append(args, url)...) // #nosec G204 G702 -- the user's own opener, given the URL as one argument
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

// Command returns an opener that runs command with the URL as its last
// argument (--browser-command). command is split on spaces, without shell
// quoting: "chromium --incognito" runs chromium with two arguments. The
// command is started, not waited for.
func Command(command string) (func(url string) error, error) {
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
