// Command tokenvault is the tokenization vault's single binary: the server (serve) and the
// client commands that talk to it over gRPC.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(exitCode(err))
	}
}
