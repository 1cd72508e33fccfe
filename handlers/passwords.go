package handlers

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/parley-chat/parley/app/chat"
)

// Passwords are stored only as argon2id hashes (golang.org/x/crypto/argon2,
// the Go project's implementation of RFC 9106) in the PHC string form
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, so that the
// parameters can be raised later and old hashes still verify.
//
// The parameters are OWASP's first recommendation for argon2id: 19 MiB of
// memory, 2 passes, 1 lane; a 16-byte random salt and a 32-byte key. One
// hash takes about 20 ms on one core of the machine in BENCHMARKS.md.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Password length, in characters (code points).
const (
	MinPasswordRunes = 10
	MaxPasswordRunes = 200
)

// hashSlots bounds the hashes computed at once: each takes 19 MiB and a
// core for ~20 ms, so a burst of sign-ins waits for a slot rather than
// exhausting memory.
var hashSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

func validatePassword(p string) error {
	if !utf8.ValidString(p) {
		return chat.Errorf(chat.EBadRequest, "password must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(p); n < MinPasswordRunes || n > MaxPasswordRunes {
		return chat.Errorf(chat.EBadRequest, "password must be %d-%d characters", MinPasswordRunes, MaxPasswordRunes)
	}
	return nil
}

// hashPassword returns password's PHC string.
func hashPassword(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := argonKey(ctx, password, salt, argonMemory, argonTime, argonThreads, argonKeyLen)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// checkPassword reports whether password matches the PHC string hash.
func checkPassword(ctx context.Context, password, hash string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("not an argon2id hash")
	}
	var version int
	var memory, passes uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, fmt.Errorf("argon2 version %q", parts[2])
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &passes, &threads); err != nil {
		return false, fmt.Errorf("argon2 parameters %q: %w", parts[3], err)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, err
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return false, err
	}
	got, err := argonKey(ctx, password, salt, memory, passes, threads, uint32(len(want)))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func argonKey(ctx context.Context, password string, salt []byte, memory, passes uint32, threads uint8, keyLen uint32) ([]byte, error) {
	select {
	case hashSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, chat.Errorf(chat.EUnavailable, "the server is busy; try again")
	}
	defer func() { <-hashSlots }()
	return argon2.IDKey([]byte(password), salt, passes, memory, threads, keyLen), nil
}

// dummyHash is checked against when the name has no account, so that an
// unknown name takes as long to refuse as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := hashPassword(context.Background(), "not a password of anyone's")
	if err != nil {
		panic(err)
	}
	return h
})
