package main

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes, documented in docs/api.md ("CLI exit codes"): scripts can tell a mistyped
// command from a refused credential from a batch where some items failed.
const (
	exitOK          = 0
	exitError       = 1 // anything else: the server unreachable, a call refused for another reason
	exitUsage       = 2 // unknown command or flag, wrong arguments
	exitAuth        = 3 // missing, invalid, revoked or expired credentials; permission denied
	exitPartialItem = 4 // the call ran, and some items (or record fields) failed: see stderr
)

// codedError carries the exit code of its error.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withExitCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

// exitCode is the process exit code for err.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	// cobra's own usage errors carry no type.
	// (flag parse errors pass through markUsageErrors' handler and carry their code.)
	if msg := err.Error(); strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "required flag") {
		return exitUsage
	}
	return exitError
}

// markUsageErrors makes the flag and argument errors of cmd and its sub-commands usage errors.
func markUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withExitCode(exitUsage, err) })
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error { return withExitCode(exitUsage, args(c, a)) }
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}
