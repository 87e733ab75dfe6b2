// Command upstream is the application behind Caddy in the benchmarks: it
// answers every request with a small fixed page, as cheaply as the
// standard library allows, so that the measurements show Caddy's cost.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
)

var page = []byte("<!doctype html><title>shop</title><p>upstream says hello\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	length := strconv.Itoa(len(page))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read what was sent, so that keep-alive connections stay usable.
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = []string{"text/html; charset=utf-8"}
		w.Header()["Content-Length"] = []string{length}
		_, _ = w.Write(page)
	})
	log.Fatal(http.ListenAndServe(*addr, h))
}
