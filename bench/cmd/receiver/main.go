// Command receiver is the SMS gateway of the benchmarks: it takes the
// stepup webhook (POST /sms, signed the Standard Webhooks way), checks
// the signature, keeps the code of every challenge and answers 204.
//
// The benchmark runner reads what it kept:
//
//	GET /count           number of codes received, and of bad requests
//	GET /codes?id=ID     "ID CODE" for one challenge (404 if none came)
//	GET /codes           "ID CODE" lines for every challenge
//	POST /reset          forget every code
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

type receiver struct {
	key []byte // nil: signatures are not checked

	mu    sync.Mutex
	codes map[string]string
	count int
	bad   int
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	secret := flag.String("secret", "", "Standard Webhooks signing secret (whsec_...); empty: no check")
	flag.Parse()

	rc := &receiver{codes: make(map[string]string)}
	if *secret != "" {
		key, err := sender.ParseWebhookSecret(*secret)
		if err != nil {
			log.Fatalf("signing secret: %v", err)
		}
		rc.key = key
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sms", rc.sms)
	mux.HandleFunc("GET /count", rc.counts)
	mux.HandleFunc("GET /codes", rc.list)
	mux.HandleFunc("POST /reset", rc.reset)
	log.Fatal(http.ListenAndServe(*addr, mux))
}

// signed reports whether the webhook carries a valid, timely Standard
// Webhooks signature under the key (as a real SMS gateway checks it).
func (rc *receiver) signed(r *http.Request, body []byte) bool {
	if rc.key == nil {
		return true
	}
	return sender.VerifyWebhook(rc.key, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"),
		r.Header.Get("webhook-signature"), body, time.Now(), 0) == nil
}

func (rc *receiver) sms(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	var msg struct {
		Code      string `json:"code"`
		Challenge string `json:"challenge"`
	}
	if err != nil || !rc.signed(r, body) || json.Unmarshal(body, &msg) != nil || msg.Code == "" || msg.Challenge == "" {
		rc.mu.Lock()
		rc.bad++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.codes[msg.Challenge] = msg.Code
	rc.count++
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) counts(w http.ResponseWriter, _ *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	fmt.Fprintf(w, "%d %d\n", rc.count, rc.bad)
}

func (rc *receiver) list(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if id := r.URL.Query().Get("id"); id != "" {
		c, ok := rc.codes[id]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "%s %s\n", id, c)
		return
	}
	for id, c := range rc.codes {
		fmt.Fprintf(w, "%s %s\n", id, c)
	}
}

func (rc *receiver) reset(w http.ResponseWriter, _ *http.Request) {
	rc.mu.Lock()
	clear(rc.codes)
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}
