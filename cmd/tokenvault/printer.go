package main

import (
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

// print writes v as indented JSON with -o json (a protobuf message with its snake_case field
// names), else calls text with stdout.
func (p printer) print(v any, text func(w io.Writer) error) error {
	if !p.json {
		return text(p.out)
	}
	if m, ok := v.(proto.Message); ok {
		b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true, Indent: "  "}.Marshal(m)
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
