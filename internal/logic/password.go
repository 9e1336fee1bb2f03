package logic

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2id parameters: OWASP's minimum (19 MiB, 2 passes, 1 lane). Hashes
// carry their parameters, so raising them later keeps old hashes valid.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

func hashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// checkPassword checks Magpie's Argon2id hashes, and the bcrypt hashes
// of users imported from another system (admin.go).
func checkPassword(hash, password string) (bool, error) {
	if isBcrypt(hash) {
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		return err == nil, err
	}
	a, err := parseArgon2(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), a.salt, a.t, a.m, a.p, uint32(len(a.key)))
	return subtle.ConstantTimeCompare(got, a.key) == 1, nil
}

// argon2Hash is a parsed $argon2id$v=19$m=…,t=…,p=…$salt$key.
type argon2Hash struct {
	m, t      uint32
	p         uint8
	salt, key []byte
}

// Bounds of an Argon2id hash's parameters: an imported hash (admin.go)
// could otherwise ask for gigabytes or minutes per login.
const (
	maxArgonMemory = 256 * 1024 // KiB
	maxArgonTime   = 16
)

func parseArgon2(hash string) (argon2Hash, error) {
	var a argon2Hash
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return a, errors.New("unknown password hash format")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &a.m, &a.t, &a.p); err != nil {
		return a, fmt.Errorf("password hash parameters: %w", err)
	}
	if a.m < 8 || a.m > maxArgonMemory || a.t < 1 || a.t > maxArgonTime || a.p < 1 || a.p > 16 {
		return a, errors.New("password hash parameters out of range")
	}
	var err error
	if a.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return a, err
	}
	if a.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil {
		return a, err
	}
	if len(a.salt) < 8 || len(a.key) < 16 || len(a.key) > 64 {
		return a, errors.New("password hash salt or key length out of range")
	}
	return a, nil
}

// dummyHash is checked against when the user does not exist, so a wrong
// name costs the same time as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, err := hashPassword("magpie-dummy-password")
	if err != nil {
		panic(err)
	}
	return h
})
