package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// printer writes a command's output: with -o json one JSON document, else text.
type printer struct {
	json        bool
	out, errOut io.Writer
}

// newPrinter prints to cmd's stdout and stderr; format is the -o value (json or text).
func newPrinter(cmd *cobra.Command, format string) printer {
	return printer{json: format == "json", out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr()}
}

// marshalProto is how -o json prints a protobuf message: with the field names of the HTTP/JSON
// API (lowerCamelCase, as the protobuf JSON mapping and grpc-gateway spell them), and every
// field even when it is zero ("records": 0, "revoked": false, "grants": []) so that scripts
// need no defaults. It is re-indented with encoding/json: protojson's own layout varies its
// spacing on purpose from build to build, which would break a grep for `"rewrapDone": true`.
func marshalProto(m proto.Message) ([]byte, error) {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// checkOutput refuses an -o value other than text or json (a usage error: exit 2).
func checkOutput(format string) error {
	if format != "text" && format != "json" {
		return withExitCode(exitUsage, fmt.Errorf("-o must be text or json, not %q", format))
	}
	return nil
}

// print writes v as indented JSON with -o json (a protobuf message as marshalProto says, anything
// else with encoding/json and its own tags), else calls text with stdout.
func (p printer) print(v any, text func(w io.Writer) error) error {
	if !p.json {
		return text(p.out)
	}
	if m, ok := v.(proto.Message); ok {
		b, err := marshalProto(m)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(p.out, string(b))
		return err
	}
	enc := json.NewEncoder(p.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printf writes a text line (or several) to stdout.
func (p printer) printf(format string, args ...any) {
	fmt.Fprintf(p.out, format, args...)
}

// warnf writes to stderr: item errors, progress and notes that are not the output.
func (p printer) warnf(format string, args ...any) {
	fmt.Fprintf(p.errOut, format, args...)
}

// table is a text table with aligned columns.
type table struct{ tw *tabwriter.Writer }

// newTable starts a table on w with its header line.
func newTable(w io.Writer, columns ...string) *table {
	t := &table{tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	cells := make([]any, len(columns))
	for i, c := range columns {
		cells[i] = c
	}
	t.row(cells...)
	return t
}

// row adds a line; each cell is printed as with %v.
func (t *table) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprintln(t.tw)
}

// flush writes the table out.
func (t *table) flush() error { return t.tw.Flush() }
