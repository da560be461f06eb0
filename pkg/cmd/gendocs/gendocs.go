// Package gendocs implements the hidden `pbench-auth gen-docs` command that
// writes the Markdown and man reference pages from the command tree, so the
// pages in docs/ can never drift from the binary (CI checks they are fresh).
package gendocs

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// Options are the parsed flags of `gen-docs`.
type Options struct {
	MarkdownDir string
	ManDir      string
	Root        *cobra.Command
}

// NewCmd builds the hidden `gen-docs` command.
func NewCmd(_ *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{}
	cmd := &cobra.Command{
		Use:    "gen-docs",
		Short:  "Write the Markdown and man reference pages",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Root = cmd.Root()
			if runF != nil {
				return runF(opts)
			}
			return run(opts)
		},
	}
	cmd.Flags().StringVar(&opts.MarkdownDir, "markdown-dir", "docs/reference", "where the Markdown pages go")
	cmd.Flags().StringVar(&opts.ManDir, "man-dir", "docs/man", "where the man pages go")
	return cmd
}

func run(opts *Options) error {
	root := opts.Root
	root.DisableAutoGenTag = true
	for _, dir := range []string{opts.MarkdownDir, opts.ManDir} {
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
	if err := doc.GenMarkdownTree(root, opts.MarkdownDir); err != nil {
		return fmt.Errorf("markdown pages: %w", err)
	}
	// A fixed date keeps the pages reproducible (no churn on every build).
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	header := &doc.GenManHeader{Title: "PBENCH-AUTH", Section: "1", Source: "pbench-auth", Manual: "pbench-auth manual", Date: &date}
	if err := doc.GenManTree(root, header, opts.ManDir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}
