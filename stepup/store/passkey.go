package store

import (
	"context"
	"errors"
	"time"
)

// Passkeys: the WebAuthn credentials users enrolled, kept per user (under
// a keyed hash of the user id made by the engine) for as long as the
// user keeps them: they are the one record of the store without a TTL,
// besides the generation marker.

// Errors of PasskeyStore.
var (
	// ErrPasskeyExists: a credential with that id is enrolled already.
	ErrPasskeyExists = errors.New("passkey already enrolled")
	// ErrPasskeyLimit: the user has as many passkeys as allowed.
	ErrPasskeyLimit = errors.New("too many passkeys")
	// ErrPasskeyNotFound: no such credential for the user.
	ErrPasskeyNotFound = errors.New("passkey not found")
	// ErrSignCount: the authenticator's signature counter did not move
	// past the stored one (a cloned authenticator, or a replayed
	// assertion); nothing was changed.
	ErrSignCount = errors.New("signature counter did not increase")
)

// Passkey is one enrolled WebAuthn credential.
type Passkey struct {
	// ID is the credential id, as the authenticator made it.
	ID []byte `json:"id"`
	// PublicKey is the credential's public key, COSE-encoded.
	PublicKey []byte `json:"pk"`
	// UserHandle is the WebAuthn user.id the credential was made for.
	UserHandle []byte `json:"uh"`
	// AAGUID names the authenticator's model (zero with attestation none).
	AAGUID []byte `json:"aaguid,omitempty"`
	// BackupEligible: the credential may be synced (a passkey provider).
	BackupEligible bool `json:"be,omitempty"`
	// Transports are the transports the browser reported at enrolment.
	Transports []string `json:"tr,omitempty"`
	// Created is when it was enrolled.
	Created time.Time `json:"c"`

	// Name is what the user calls it ("Phone"); changed by RenamePasskey.
	Name string `json:"-"`
	// SignCount is the last signature counter seen (0: the
	// authenticator keeps none).
	SignCount uint32 `json:"-"`
	// LastUsed is when it last verified a step-up; zero if never.
	LastUsed time.Time `json:"-"`
}

// MaxPasskeyName bounds a passkey's name, in bytes.
const MaxPasskeyName = 64

// PasskeyStore keeps users' passkeys. Memory and Redis implement it; each
// method is atomic.
type PasskeyStore interface {
	// AddPasskey enrols p (with its name and its counter at enrolment)
	// for user, unless a credential with its id is
	// enrolled for user already (ErrPasskeyExists) or user has max
	// passkeys (ErrPasskeyLimit).
	AddPasskey(ctx context.Context, user string, p Passkey, max int) error
	// Passkeys returns user's passkeys, oldest first (none: empty, no
	// error).
	Passkeys(ctx context.Context, user string) ([]Passkey, error)
	// UsePasskey records a verified use of user's credential id at now
	// with the authenticator's counter: when either the stored counter
	// or counter is not zero, counter must be greater than the stored
	// one, else ErrSignCount and nothing changes. Of concurrent callers
	// with the same counter at most one succeeds. ErrPasskeyNotFound when
	// there is no such credential (removed meanwhile).
	UsePasskey(ctx context.Context, user string, id []byte, counter uint32, now time.Time) error
	// RenamePasskey names user's credential id (at most MaxPasskeyName
	// bytes), or ErrPasskeyNotFound.
	RenamePasskey(ctx context.Context, user string, id []byte, name string) error
	// RemovePasskey removes user's credential id, or ErrPasskeyNotFound.
	RemovePasskey(ctx context.Context, user string, id []byte) error
}

// counterOK is the sign counter rule of UsePasskey (WebAuthn §7.2 step 21).
func counterOK(stored, got uint32) bool {
	if stored == 0 && got == 0 {
		return true
	}
	return got > stored
}

func checkPasskeyName(name string) error {
	if len(name) > MaxPasskeyName {
		return errors.New("passkey name too long")
	}
	return nil
}
