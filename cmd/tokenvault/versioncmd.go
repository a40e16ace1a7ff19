package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at build time (see docs/install.md):
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=$(git rev-parse HEAD) -X main.buildDate=$(date -u +%FT%TZ)" ./cmd/tokenvault
//
// Without them the binary reports what the Go toolchain stamped into it: the module version
// (go install …@v1.2.3) or "devel", and the VCS commit and its time when built with
// -buildvcs=true in a git checkout.
var version, commit, buildDate string

// buildInfo is what tokenvault version reports.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"`
	BuildTime string `json:"build_time"`
	GoVersion string `json:"go_version"`
}

// readBuildInfo collects the version, commit and build time set at build time, else those
// the Go toolchain stamped into the binary, and the Go version.
func readBuildInfo() buildInfo {
	bi := buildInfo{Version: version, Commit: commit, BuildTime: buildDate}
	if info, ok := debug.ReadBuildInfo(); ok {
		bi.GoVersion = info.GoVersion
		if bi.Version == "" && info.Main.Version != "(devel)" {
			bi.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && bi.Commit == "":
				bi.Commit = s.Value
			case s.Key == "vcs.time" && bi.BuildTime == "":
				bi.BuildTime = s.Value
			case s.Key == "vcs.modified":
				bi.Modified = s.Value == "true"
			}
		}
	}
	for _, f := range []*string{&bi.Version, &bi.Commit, &bi.BuildTime} {
		if *f == "" {
			*f = "unknown"
		}
	}
	if bi.Version == "unknown" {
		bi.Version = "devel"
	}
	return bi
}

func (b buildInfo) String() string {
	commit := b.Commit
	if b.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("tokenvault %s\ncommit:  %s\nbuilt:   %s\ngo:      %s\n", b.Version, commit, b.BuildTime, b.GoVersion)
}

func newVersionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build time and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			bi := readBuildInfo()
			return newPrinter(cmd, output).print(bi, func(w io.Writer) error {
				_, err := io.WriteString(w, bi.String())
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
