package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"

	client "github.com/tokenvault/tokenvault/clients/go"
	"github.com/tokenvault/tokenvault/internal/testenv"
)

// startServer runs a real in-process server (testenv: loopback ports, bbolt file, Tink keys)
// for the examples and returns its gRPC address, its root secret and a stop function.
func startServer() (addr, secret string, stop func()) {
	d := &testenv.Detached{}
	env := testenv.Start(d, testenv.DiscardLogs())
	return env.Addrs.GRPC, testenv.RootSecret, d.Close
}

func Example() {
	addr, secret, stop := startServer()
	defer stop()

	c, err := client.New(addr, client.WithToken(secret))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	res, err := c.Tokenize(ctx, []client.TokenizeItem{
		{Value: "4111 1111 1111 1111", Template: "pan", Domain: "acme"},
		{Value: "12-34", Template: "ssn", Domain: "acme"},
	})
	if err != nil {
		log.Fatal(err)
	}
	tok := res[0].Token
	fmt.Println(len(tok), tok[4] == ' ', strings.HasSuffix(tok, "1111"))
	fmt.Println(res[1].Err)

	back, err := c.Detokenize(ctx, "example", []client.DetokenizeItem{{Token: tok, Domain: "acme"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(back[0].Value)
	// Output:
	// 19 true true
	// INVALID_ARGUMENT: ssn: must be NNN-NN-NNNN or nine digits
	// 4111 1111 1111 1111
}

func ExampleClient_TokenizeRecords() {
	addr, secret, stop := startServer()
	defer stop()
	c, err := client.New(addr, client.WithToken(secret))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	policy := "$.customer.email: email\n$.payment.card: pan\n"
	doc := json.RawMessage(`{"order":42,"customer":{"email":"jane@example.com"},"payment":{"card":"4111111111111111","amount":1.50}}`)
	out, failed, err := c.TokenizeRecords(context.Background(), policy, "shipping", []json.RawMessage{doc})
	if err != nil {
		log.Fatal(err)
	}
	var got struct {
		Order    int `json:"order"`
		Customer struct {
			Email string `json:"email"`
		} `json:"customer"`
	}
	_ = json.Unmarshal(out[0], &got)
	fmt.Println(len(failed), got.Order, strings.HasSuffix(got.Customer.Email, "@example.com"), got.Customer.Email != "jane@example.com")
	fmt.Println(strings.Contains(string(out[0]), `"amount":1.50`))
	// Output:
	// 0 42 true true
	// true
}
