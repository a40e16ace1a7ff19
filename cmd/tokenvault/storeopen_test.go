package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenvault/tokenvault/vault/store"
)

func TestStoreURLRedaction(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"postgres://tv:hunter2pw@db:5432/tv?sslmode=verify-full", "postgres://tv:xxxxx@db:5432/tv?sslmode=verify-full"},
		{"postgresql://tv@db/tv?password=hunter2pw&sslmode=require", "postgresql://tv@db/tv?password=xxxxx&sslmode=require"},
		{"postgres://tv@db/tv", "postgres://tv@db/tv"},
	} {
		if got := redactURL(tc.url); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.url, got, tc.want)
		}
		err := redactErr(errors.Join(store.ErrUnavailable, errors.New("connecting with "+tc.url)), tc.url)
		if strings.Contains(err.Error(), "hunter2pw") {
			t.Errorf("redactErr kept the password: %v", err)
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("redactErr lost what the error wraps: %v", err)
		}
	}
	for _, bad := range []string{"host=db password=x", "mysql://db/tv", "http://db/tv"} {
		if err := checkStoreURL(bad); err == nil || strings.Contains(err.Error(), "password") {
			t.Errorf("checkStoreURL(%q) = %v; want a refusal that does not echo it", bad, err)
		}
	}
	if err := checkStoreURL("postgresql://tv@db/tv"); err != nil {
		t.Errorf("checkStoreURL(postgresql://…) = %v", err)
	}
}
