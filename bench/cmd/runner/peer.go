package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// The peer row (P): Caddy with caddy-security's `authorize`, a stateless
// JWT check in process, the fastest kind of proxy-side auth plugin. It
// runs as a Caddy process of its own (a second binary, built by
// bench/run.sh with xcaddy), in front of the same upstream.

// peerRoles is the role the peer's policy allows (Caddyfile-peer.tmpl).
const peerRoles = "authp/user"

// startPeer writes the peer's Caddyfile and starts it.
func (s *suite) startPeer(ctx context.Context, launch func(string, int, []string, string, ...string) (*proc, error),
	release func(...int)) error {
	conf, err := s.writeConfig("Caddyfile-peer", "Caddyfile-peer", s.ports)
	if err != nil {
		return err
	}
	var key [32]byte
	_, _ = rand.Read(key[:])
	secret := hex.EncodeToString(key[:])
	s.jwt = hs256(secret, map[string]any{
		"sub": "alice", "name": "alice", "email": "alice@example.com",
		"roles": []string{peerRoles}, "iss": "bench", "iat": time.Now().Unix(),
		"nbf": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(6 * time.Hour).Unix(),
	})
	env := []string{"HOME=" + s.opts.work, "XDG_CONFIG_HOME=" + s.opts.work, "XDG_DATA_HOME=" + s.opts.work,
		"BENCH_JWT_SECRET=" + secret}
	release(s.ports.Peer, s.ports.PeerAdmin, s.ports.PeerPlain)
	s.peer, err = launch("peer", s.ports.Peer, env, s.opts.peer, "run", "--config", conf, "--adapter", "caddyfile")
	if err != nil {
		return err
	}
	for _, port := range []int{s.ports.PeerAdmin, s.ports.PeerPlain} {
		if err := s.peer.waitListen("127.0.0.1:"+strconv.Itoa(port), 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// hs256 returns a JWT of claims signed with HMAC-SHA256 under secret.
func hs256(secret string, claims map[string]any) string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, err := json.Marshal(claims)
	if err != nil {
		panic(fmt.Sprintf("claims: %v", err))
	}
	unsigned := header + "." + enc.EncodeToString(body)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(m.Sum(nil))
}
