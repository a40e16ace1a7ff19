package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	client "github.com/tokenvault/tokenvault/clients/go"
	"github.com/tokenvault/tokenvault/vault"
)

func newRecordCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "record", Short: "Tokenize or detokenize fields of JSON documents (stdin → stdout)"}
	cmd.AddCommand(newRecordTransformCmd(true), newRecordTransformCmd(false))
	return cmd
}

// recordPolicyHelp is the end of record tokenize/detokenize's help.
const recordPolicyHelp = `.

The policy file maps JSON paths to templates, one rule a line (YAML or JSON):

  $.customer.email: email
  $.payment.card: pan
  $.items[*].note: opaque

stdin holds one JSON document, a JSON array of documents, or one document a line; the output
has the same shape. Member order and number text are kept. A field that fails is reported on
stderr with its document and JSON path (never its value), and the exit code is non-zero; when
tokenizing, a document with a failed field is replaced by null so no clear value goes on.`

// newRecordTransformCmd is record tokenize (tokenize) or record detokenize: the documents on
// stdin go to the server in calls of at most vault.MaxRecordDocs.
func newRecordTransformCmd(tokenize bool) *cobra.Command {
	var policyFile, domain, purpose string
	var policy []byte
	var docs []json.RawMessage
	var array bool
	use, short := "tokenize", "Tokenize the fields a policy selects in JSON documents read from stdin"
	if !tokenize {
		use, short = "detokenize", "Reveal the tokens a policy selects in JSON documents read from stdin"
	}
	cmd := clientCmd(&cobra.Command{
		Use:   use + " --policy FILE [--domain D] < in.json > out.json",
		Short: short,
		Long:  short + recordPolicyHelp,
		Args:  cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if policy, err = os.ReadFile(policyFile); err != nil {
				return fmt.Errorf("--policy: %w", err)
			}
			in, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return err
			}
			docs, array, err = splitDocuments(in)
			return err
		},
	}, func(s *session, _ []string) error {
		var out []json.RawMessage
		var failed []client.FieldError
		for start := 0; start < len(docs); start += vault.MaxRecordDocs {
			part := docs[start:min(start+vault.MaxRecordDocs, len(docs))]
			var o []json.RawMessage
			var f []client.FieldError
			var err error
			if tokenize {
				o, f, err = s.c.TokenizeRecords(s.ctx, string(policy), domain, part)
			} else {
				o, f, err = s.c.DetokenizeRecords(s.ctx, string(policy), domain, purpose, part)
			}
			if err != nil {
				return err
			}
			for i := range f {
				f[i].Doc += start
			}
			out, failed = append(out, o...), append(failed, f...)
		}
		if err := writeDocuments(s.out, out, array); err != nil {
			return err
		}
		for _, f := range failed {
			s.warnf("%s\n", f.Error())
		}
		if len(failed) > 0 {
			return withExitCode(exitPartialItem, fmt.Errorf("%d fields failed", len(failed)))
		}
		return nil
	})
	cmd.Flags().StringVar(&policyFile, "policy", "", "the field policy file")
	cmd.Flags().StringVar(&domain, "domain", "", "token domain (default \"default\")")
	if !tokenize {
		cmd.Flags().StringVar(&purpose, "purpose", "", "why the values are needed (kept in the audit trail)")
	}
	_ = cmd.MarkFlagRequired("policy")
	return cmd
}

// splitDocuments reads one document, an array of documents, or a stream of documents.
func splitDocuments(in []byte) ([]json.RawMessage, bool, error) {
	trimmed := bytes.TrimSpace(in)
	if len(trimmed) == 0 {
		return nil, false, errors.New("no JSON documents on stdin")
	}
	if trimmed[0] == '[' {
		var docs []json.RawMessage
		if err := json.Unmarshal(trimmed, &docs); err != nil {
			return nil, false, errors.New("stdin is not a valid JSON array of documents")
		}
		return docs, true, nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var docs []json.RawMessage
	for {
		var d json.RawMessage
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("document %d on stdin is not valid JSON", len(docs))
		}
		docs = append(docs, d)
	}
}

func writeDocuments(w io.Writer, docs []json.RawMessage, array bool) error {
	for i := range docs {
		if docs[i] == nil {
			docs[i] = json.RawMessage("null")
		}
	}
	if array {
		var b bytes.Buffer
		b.WriteByte('[')
		for i, d := range docs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(d)
		}
		b.WriteString("]\n")
		_, err := w.Write(b.Bytes())
		return err
	}
	for _, d := range docs {
		if _, err := fmt.Fprintf(w, "%s\n", d); err != nil {
			return err
		}
	}
	return nil
}
