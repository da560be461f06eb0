// Package browser opens URLs in the user's browser: the platform's opener
// ($BROWSER, open, xdg-open...) or a command the user names
// (--browser-command). Either opens only what CheckURL lets through.
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
// is started, not waited for. Only what CheckURL lets through is opened: an
// absolute https URL (or http on loopback), never one that the opener could
// read as an option.
func Open(raw string) error {
	url, err := CheckURL(raw)
	if err != nil {
		return err
	}
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
// command is started, not waited for. The URL must pass CheckURL first.
func Command(command string) (func(url string) error, error) {
	argv := strings.Fields(command)
	if len(argv) == 0 {
		return nil, errors.New("--browser-command is empty")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("--browser-command %q: %w", argv[0], err)
	}
	return func(raw string) error {
		// Only an absolute https URL (or http on loopback), which no
		// argument parser reads as an option, reaches the command.
		url, err := CheckURL(raw)
		if err != nil {
			return err
		}
		cmd := exec.Command(path, append(argv[1:], url)...) // #nosec G204 -- the user's own command, and a checked URL
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", argv[0], err)
		}
		go func() { _ = cmd.Wait() }()
		return nil
	}, nil
}
