// Command httpfloor is the baseline for tokenvault's per-request CPU: a plain net/http server
// that answers POST /v1/tokens:tokenize as tokenvault does on the wire (bearer token compared
// in constant time, the JSON body decoded with encoding/json, one token per item encoded
// back), and stores nothing, audits nothing and syncs nothing. `tokenvault bench --protocol
// http --op tokenize --server-pid PID` against it measures what net/http and JSON alone cost
// per request on this machine, beside tokenvault measured in the same run
// (deploy/bench/floor.sh).
//
//	httpfloor -addr 127.0.0.1:38090 -token root
package main

import (
	"crypto/subtle"
	"encoding/json"
	"flag"
	"log"
	"net/http"
)

type request struct {
	Items []struct {
		Value    string `json:"value"`
		Template string `json:"template"`
		Domain   string `json:"domain"`
	} `json:"items"`
}

type result struct {
	Token string `json:"token"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:38090", "listen address")
	token := flag.String("token", "root", "bearer token to accept")
	flag.Parse()
	want := []byte("Bearer " + *token)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("POST /v1/tokens:tokenize", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, `{"code":16,"message":"unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		var req request
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&req); err != nil {
			http.Error(w, `{"code":3,"message":"bad request"}`, http.StatusBadRequest)
			return
		}
		out := struct {
			Results []result `json:"results"`
		}{Results: make([]result, len(req.Items))}
		for i, it := range req.Items {
			out.Results[i].Token = it.Value // the same shape and length as a format-preserving token
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(out); err != nil {
			log.Print(err)
		}
	})
	log.Printf("listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
