package cmdutil

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
)

// openBrowser starts the platform's URL opener. $BROWSER wins when set.
func openBrowser(url string) error {
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
