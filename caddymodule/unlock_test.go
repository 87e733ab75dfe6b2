package caddymodule

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-stepup/caddy-stepup/internal/testredis"
	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

func TestUnlockUser(t *testing.T) {
	srv := testredis.Run(t)
	t.Setenv("STEPUP_SECRET", strings.Repeat("k", 40))
	caddyfile := `{
	admin off
}
http://127.0.0.1:1 {
	stepup {
		redis ` + srv.URL() + ` {
			key_prefix shop:
		}
		secret {env.STEPUP_SECRET}
		identity header {
			user U
			phone P
		}
		sender log
	}
}
http://127.0.0.1:2 {
	stepup {
		identity header {
			user U
			phone P
		}
		sender log
	}
}
`
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st := store.NewRedis(redis.NewClient(&redis.Options{Addr: srv.Addr()}), "shop:", true)
	defer st.Close()
	key, _ := stepup.UserKey([]byte(strings.Repeat("k", 40)), "alice")
	other, _ := stepup.UserKey([]byte(strings.Repeat("k", 40)), "bob")
	for i := 0; i < 20; i++ {
		_, _ = st.AddFailure(ctx, key, time.Hour)
	}
	_, _ = st.AddFailure(ctx, other, time.Hour)

	var out bytes.Buffer
	// The Redis handler is unlocked; the memory one cannot be reached
	// from here, which makes the command fail (exit 1) after the rest.
	n, err := unlockUser(ctx, cfg, "alice", "", &out)
	if err == nil || !strings.Contains(err.Error(), "memory store") || n != 1 {
		t.Fatalf("unlockUser = %d, %v; want 1 and an error naming the memory store\n%s", n, err, out.String())
	}
	if !strings.Contains(out.String(), ":1/.stepup:-: cleared 20 failed attempts (with audit_user hmac, audit events name this user "+key+")") ||
		!strings.Contains(out.String(), ":2/.stepup:-: memory store") {
		t.Fatalf("output:\n%s", out.String())
	}
	if got, _, _ := st.Failures(ctx, key); got != 0 {
		t.Fatalf("alice still has %d failures", got)
	}
	if got, _, _ := st.Failures(ctx, other); got != 1 {
		t.Fatalf("bob's count changed to %d", got)
	}
	if _, err := unlockUser(ctx, cfg, "", "", &out); err == nil {
		t.Fatal("no --user accepted")
	}

	// revoke records the time for alice only, and a later revocation wins.
	out.Reset()
	if n, err := revokeUser(ctx, cfg, "alice", ":1/.stepup:-", &out); err != nil || n != 1 || !strings.Contains(out.String(), "revoked every grant") {
		t.Fatalf("revokeUser = %d, %v\n%s", n, err, out.String())
	}
	if at, _ := st.RevokedAt(ctx, key); time.Since(at) > time.Minute {
		t.Fatalf("alice revoked at %v", at)
	}
	if at, _ := st.RevokedAt(ctx, other); !at.IsZero() {
		t.Fatal("bob was revoked too")
	}
}

// A previous secret that does not resolve (its variable unset) is an
// error, not a silent skip: instances still on it would keep the grants
// and lockouts the operator believes are gone.
func TestRevokeNeedsEveryPreviousSecret(t *testing.T) {
	srv := testredis.Run(t)
	t.Setenv("STEPUP_SECRET", strings.Repeat("k", 40))
	caddyfile := `{
	admin off
}
http://127.0.0.1:1 {
	stepup {
		redis ` + srv.URL() + `
		secret {env.STEPUP_SECRET}
		previous_secrets {env.STEPUP_OLD_SECRET_UNSET}
		identity header {
			user U
			phone P
		}
		sender log
	}
}
`
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if n, err := revokeUser(context.Background(), cfg, "alice", "", &out); err == nil || !strings.Contains(err.Error(), "previous_secrets[0]") {
		t.Fatalf("revokeUser with an unset previous secret = %d, %v; want an error naming it\n%s", n, err, out.String())
	}
	if strings.Contains(out.String(), "revoked every grant") {
		t.Fatalf("reported success:\n%s", out.String())
	}
}
