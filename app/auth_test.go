package main

import (
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// authForTest mints tokens as a system fronting Parley would, with nothing
// but the shared secret: the contract's promise, checked independently of
// the handlers' own code.
type authForTest struct{ secret string }

func (a *authForTest) issue(user string) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(a.secret))
}
