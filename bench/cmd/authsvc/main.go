// Command authsvc is a minimal external authentication service, the kind
// that Caddy's forward_auth asks on every request (Authelia and
// oauth2-proxy work this way). It looks the session cookie up in Redis:
// a known session gets 200 with the user's identity headers, anything
// else 401.
//
// Sessions are Redis strings "<prefix><cookie value>" holding
// "<user> <phone>".
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net/http"
	"strings"

	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis URL")
	cookie := flag.String("cookie", "session", "session cookie name")
	prefix := flag.String("prefix", "sess:", "key prefix of sessions in Redis")
	flag.Parse()

	opt, err := redis.ParseURL(*redisURL)
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(*cookie)
		if err != nil || c.Value == "" || len(c.Value) > 128 {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		v, err := rdb.Get(r.Context(), *prefix+c.Value).Result()
		switch {
		case errors.Is(err, redis.Nil):
			w.WriteHeader(http.StatusUnauthorized)
			return
		case err != nil:
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		user, phone, _ := strings.Cut(v, " ")
		w.Header().Set("X-Remote-User", user)
		w.Header().Set("X-Remote-Phone", phone)
		w.WriteHeader(http.StatusOK)
	})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		log.Fatalf("redis: %v", err)
	}
	log.Fatal(http.ListenAndServe(*addr, h))
}
