package handlers

import (
	"context"
	"testing"
)

// BenchmarkHashPassword is one argon2id hash with Parley's parameters (19
// MiB, 2 passes, 1 lane): the cost of creating an account, and of every
// password sign-in.
func BenchmarkHashPassword(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hashPassword(context.Background(), "correct horse battery"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckPassword compares a right and a wrong password, and an
// unknown name's (against the dummy hash): the three take the same work.
func BenchmarkCheckPassword(b *testing.B) {
	hash, err := hashPassword(context.Background(), "correct horse battery")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, password, hash string }{
		{"right", "correct horse battery", hash},
		{"wrong", "wrong horse battery", hash},
		{"unknown name", "correct horse battery", dummyHash()},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := checkPassword(context.Background(), c.password, c.hash); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
