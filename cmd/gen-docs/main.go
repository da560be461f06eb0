// Command gen-docs writes pbench-auth's Markdown and man reference pages from
// the same command tree as the binary, so that the pages in docs/ cannot
// drift from it (scripts/generate.sh --check, run by CI, compares them).
//
//	go run ./cmd/gen-docs [-markdown-dir docs/reference] [-man-dir docs/man]
//
// It is a program of its own, not a hidden pbench-auth command, so that
// pbench-auth does not link the Markdown renderer and run its package
// initialisation at every start.
//
// Danger: it first deletes every pbench-auth* file in both directories.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra/doc"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/root"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

func main() {
	markdownDir := flag.String("markdown-dir", "docs/reference", "where the Markdown pages go")
	manDir := flag.String("man-dir", "docs/man", "where the man pages go")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gen-docs: unexpected argument %q (it takes only -markdown-dir and -man-dir)\n", flag.Arg(0))
		os.Exit(cmdutil.ExitUsage)
	}
	if err := run(*markdownDir, *manDir); err != nil {
		fmt.Fprintln(os.Stderr, "gen-docs:", err)
		os.Exit(cmdutil.ExitFailure)
	}
}

func run(markdownDir, manDir string) error {
	cmd := root.NewCmd(cmdutil.New())
	cmd.DisableAutoGenTag = true
	// Cobra adds "completion" and "help" when a command line is executed;
	// the pages document them as the binary shows them.
	cmd.InitDefaultHelpCmd()
	cmd.InitDefaultCompletionCmd()
	for _, dir := range []string{markdownDir, manDir} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		old, _ := filepath.Glob(filepath.Join(dir, "pbench-auth*"))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	if err := doc.GenMarkdownTree(cmd, markdownDir); err != nil {
		return fmt.Errorf("markdown pages: %w", err)
	}
	// A fixed date keeps the pages reproducible (no churn on every build).
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	header := &doc.GenManHeader{Title: "PBENCH-AUTH", Section: "1", Source: "pbench-auth", Manual: "pbench-auth manual", Date: &date}
	if err := doc.GenManTree(cmd, header, manDir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}
