package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// phone is the number of every benchmark user (a fictional US mobile
// number, which the default phone rules accept).
const phone = "+14155550100"

// client is the runner's own HTTP client for set-up and checks (never for
// the measurements, which wrk makes).
var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// send makes a request with the given headers ("Name: value") and
// returns the answer with its whole body read.
func send(ctx context.Context, c *http.Client, method, rawURL string, headers []string, body io.Reader) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, "", err
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp, string(data), err
}

// expect checks that one request with the given headers gets status want.
func expect(ctx context.Context, rawURL string, headers []string, want int) error {
	resp, body, err := send(ctx, client, http.MethodGet, rawURL, headers, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: %d, want %d: %.300s", rawURL, resp.StatusCode, want, body)
	}
	return nil
}

func identityHeaders(user string) []string {
	return []string{"X-Remote-User: " + user, "X-Remote-Phone: " + phone}
}

// receiverClient reads what the webhook receiver kept.
type receiverClient struct{ base string }

// count returns the number of codes received and of refused webhooks.
func (rc receiverClient) count(ctx context.Context) (ok, bad int, err error) {
	_, body, err := send(ctx, client, http.MethodGet, rc.base+"/count", nil, nil)
	if err != nil {
		return 0, 0, err
	}
	_, err = fmt.Sscan(body, &ok, &bad)
	return ok, bad, err
}

// code returns the code sent for one challenge.
// A browser's code is sent after its answer: code waits up to 15
// seconds for it (a loaded machine may take a while).
func (rc receiverClient) code(ctx context.Context, id string) (string, error) {
	deadline := time.Now().Add(15 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		resp, body, err := send(ctx, client, http.MethodGet, rc.base+"/codes?id="+url.QueryEscape(id), nil, nil)
		if err != nil {
			return "", err
		}
		if resp.StatusCode == http.StatusOK {
			_, code, _ := strings.Cut(strings.TrimSpace(body), " ")
			return code, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no code reached the receiver for challenge %s", id)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

// codes returns every code the receiver kept since the last reset, by
// challenge.
func (rc receiverClient) codes(ctx context.Context) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rc.base+"/codes", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := make(map[string]string)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if id, code, ok := strings.Cut(sc.Text(), " "); ok {
			m[id] = code
		}
	}
	return m, sc.Err()
}

func (rc receiverClient) reset(ctx context.Context) error {
	_, _, err := send(ctx, client, http.MethodPost, rc.base+"/reset", nil, nil)
	return err
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// browserGrant goes through the browser flow of a session policy as user
// (protected page, 303 to the code page, the code from the receiver,
// the form, 303 back) and returns the Cookie header that now opens
// target: stepup's session cookie and the grant cookie.
func browserGrant(ctx context.Context, rc receiverClient, target, user string) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: client.CheckRedirect}
	nav := append(identityHeaders(user), "Accept: text/html,application/xhtml+xml", "Sec-Fetch-Mode: navigate")

	resp, body, err := send(ctx, c, http.MethodGet, target, nav, nil)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("protected GET %s: %d, want 303: %.300s", target, resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		return "", err
	}
	page := loc.String()
	id := page[strings.LastIndexByte(page, '/')+1:]
	code, err := rc.code(ctx, id)
	if err != nil {
		return "", err
	}
	resp, body, err = send(ctx, c, http.MethodGet, page, nav, nil)
	if err != nil {
		return "", err
	}
	m := csrfRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		return "", fmt.Errorf("code page %s: %d, no csrf field: %.300s", page, resp.StatusCode, body)
	}
	form := url.Values{"csrf": {m[1]}, "code": {code}}.Encode()
	resp, body, err = send(ctx, c, http.MethodPost, page,
		append(nav, "Content-Type: application/x-www-form-urlencoded"), strings.NewReader(form))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("posting the code: %d, want 303: %.300s", resp.StatusCode, body)
	}
	u, _ := url.Parse(target)
	var parts []string
	for _, ck := range jar.Cookies(u) {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	if len(parts) < 2 {
		return "", fmt.Errorf("after the code the browser holds %d cookies, want the session and the grant", len(parts))
	}
	cookie := strings.Join(parts, "; ")
	if err := expect(ctx, target, append(nav, "Cookie: "+cookie), http.StatusOK); err != nil {
		return "", fmt.Errorf("with the grant: %w", err)
	}
	return cookie, nil
}

// pending is one challenge made for the verification runs.
type pending struct {
	user, id, code string
}

// apiChallenge starts one challenge as an API client and returns its id.
func apiChallenge(ctx context.Context, target, user string) (string, int, error) {
	return apiChallengeWith(ctx, target, identityHeaders(user))
}

// apiChallengeWith is apiChallenge with the identity headers given.
func apiChallengeWith(ctx context.Context, target string, headers []string) (string, int, error) {
	resp, body, err := send(ctx, client, http.MethodGet, target, headers, nil)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return "", resp.StatusCode, nil
	}
	var v struct {
		Error     string `json:"error"`
		Challenge string `json:"challenge"`
		VerifyURL string `json:"verify_url"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Error != "step_up_required" || v.Challenge == "" {
		return "", resp.StatusCode, fmt.Errorf("401 without a challenge: %.300s", body)
	}
	return v.Challenge, resp.StatusCode, nil
}

// parallel calls fn(0) ... fn(n-1) from 32 goroutines and returns the
// first error (after which no new call starts).
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					select {
					case errs <- err:
					default:
					}
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// precreate makes n challenges through the API, each for its own user
// (prefix-N), and returns them with the codes the receiver got. It resets
// the receiver first.
func precreate(ctx context.Context, rc receiverClient, target, prefix string, n int) ([]pending, error) {
	if err := rc.reset(ctx); err != nil {
		return nil, err
	}
	out := make([]pending, n)
	err := parallel(ctx, n, func(i int) error {
		user := prefix + "-" + strconv.Itoa(i)
		id, status, err := apiChallenge(ctx, target, user)
		// A 503 is a store error: on a machine loaded enough to stall
		// Redis for seconds, the preparation (not a measured run) tries
		// again, as another user, up to three times.
		for try := 1; err == nil && status == http.StatusServiceUnavailable && try <= 3; try++ {
			time.Sleep(time.Duration(try) * 200 * time.Millisecond)
			user = prefix + "-" + strconv.Itoa(i) + "-r" + strconv.Itoa(try)
			id, status, err = apiChallenge(ctx, target, user)
		}
		if err == nil && id == "" {
			err = fmt.Errorf("GET %s as %s: %d, want 401", target, user, status)
		}
		out[i] = pending{user: user, id: id}
		return err
	})
	if err != nil {
		return nil, err
	}
	codes, err := rc.codes(ctx)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].code = codes[out[i].id]
		if out[i].code == "" {
			return nil, fmt.Errorf("no code reached the receiver for challenge %s", out[i].id)
		}
	}
	return out, nil
}

// verifyOne verifies a challenge through the API and returns the grant
// token that comes back.
func verifyOne(ctx context.Context, verifyURL string, p pending) (string, error) {
	body := fmt.Sprintf(`{"challenge":%q,"code":%q}`, p.id, p.code)
	resp, data, err := send(ctx, client, http.MethodPost, verifyURL,
		append(identityHeaders(p.user), "Content-Type: application/json"), strings.NewReader(body))
	if err != nil {
		return "", err
	}
	var v struct {
		Grant string `json:"grant"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(data), &v) != nil || v.Grant == "" {
		return "", fmt.Errorf("POST %s: %d, want 200 with a grant: %.300s", verifyURL, resp.StatusCode, data)
	}
	return v.Grant, nil
}

// apiGrants gets session grants (Stepup-Grant tokens) for n users through
// the API: a challenge each, then its code verified.
func apiGrants(ctx context.Context, rc receiverClient, target, verifyURL, prefix string, n int) ([]pending, error) {
	ps, err := precreate(ctx, rc, target, prefix, n)
	if err != nil {
		return nil, err
	}
	err = parallel(ctx, n, func(i int) error {
		tok, err := verifyOne(ctx, verifyURL, ps[i])
		ps[i].code = tok
		return err
	})
	return ps, err
}

// exhaustPerIP starts challenges from this address until the per_ip limit
// refuses one (429), so that the flood that follows is refused from its
// first request. Each challenge is for another user and another number,
// as in the flood, so that only the address's limit can be the one that
// refuses.
func exhaustPerIP(ctx context.Context, target string) error {
	for i := range 1000 {
		_, status, err := apiChallengeWith(ctx, target, []string{
			"X-Remote-User: budget-" + randomSecret(6) + "-" + strconv.Itoa(i),
			fmt.Sprintf("X-Remote-Phone: +1415%07d", 8500000+i),
		})
		if err != nil {
			return err
		}
		if status == http.StatusTooManyRequests {
			return nil
		}
	}
	return errors.New("no 429 after 1000 challenges from one address: is per_ip on?")
}
