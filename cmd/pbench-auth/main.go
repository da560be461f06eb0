// Command pbench-auth is the Pbench third-party token tool: see pkg/cmd/root.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/root"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	f := cmdutil.New()
	err := root.NewCmd(f).ExecuteContext(ctx)
	stop()
	if err != nil && !errors.Is(err, cmdutil.ErrSilent) {
		fmt.Fprintln(f.IO.ErrOut, "pbench-auth:", err)
	}
	os.Exit(cmdutil.ExitCode(err))
}
