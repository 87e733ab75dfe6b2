package caddymodule

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/stepup"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
)

// sendTestCommand is "caddy stepup send-test".
func sendTestCommand() *cobra.Command {
	sub := &cobra.Command{
		Use:   "send-test --config <path> [--adapter <name>] --to <number|address> [--sender <name>] [--chain]",
		Short: "Sends a test message through the configured senders",
		Long: `
Loads the config (adapting it, for instance from a Caddyfile), finds every
stepup handler in it, provisions its senders as Caddy would (placeholders
such as {env.TWILIO_TOKEN} are resolved, so run it with the server's
environment), and sends one clearly labelled test message to --to through
each sender, printing what each one answered.

No challenge is created and no code is usable: the message says it is a
test, and providers whose template needs a code variable (WhatsApp, MSG91)
get the fixed value 000000. Senders bound to India's DLT templates
(vonage with entity_id, sns with entity_id and template_id) get the
handler's configured code message with 000000 as the code instead, since
Indian operators drop a text that matches no registered template; their
line says so.

--to is a phone number in international form (+919876543210), or an e-mail
address for the email senders. --sender limits the test to the senders with
that name. --chain sends a single message through the failover chain, as a
challenge would, and prints which sender delivered it.

"ok" means that the provider accepted the message, not that the handset
received it. The exit status is 1 when a send failed.
`,
		Args: cobra.NoArgs,
	}
	sub.RunE = func(cmd *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			return cmdSendTest(fl, cmd.OutOrStdout())
		})(cmd, args)
	}
	sub.Flags().StringP("config", "c", "", "Configuration file (required)")
	sub.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	sub.Flags().String("to", "", "Destination: a phone number in E.164 form, or an e-mail address (required)")
	sub.Flags().String("sender", "", "Only the senders with this name")
	sub.Flags().Bool("chain", false, "Send one message through the failover chain instead of one per sender")
	return sub
}

// cmdSendTest runs "caddy stepup send-test", printing on out.
func cmdSendTest(fl caddycmd.Flags, out io.Writer) (int, error) {
	configFile := fl.String("config")
	if configFile == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--config is required")
	}
	cfg, _, _, err := caddycmd.LoadConfig(configFile, fl.String("adapter"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	failed, err := sendTest(context.Background(), cfg, sendTestOptions{
		To:     fl.String("to"),
		Sender: fl.String("sender"),
		Chain:  fl.Bool("chain"),
	}, out)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if failed > 0 {
		return 1, fmt.Errorf("%d test send(s) failed", failed)
	}
	return 0, nil
}

// sendTestOptions are the flags of send-test.
type sendTestOptions struct {
	To     string // phone number or e-mail address
	Sender string // only senders of this name; "" for all
	Chain  bool   // one message through the failover chain
}

// testCode is the fixed, non-secret value sent where a provider's
// template needs a code.
const testCode = "000000"

// stepupHandler is what send-test reads of a handler's JSON: its
// senders, and what renders its code message.
type stepupHandler struct {
	SendersRaw    []json.RawMessage `json:"senders,omitempty" caddy:"namespace=http.stepup.senders inline_key=sender"`
	SendTimeout   caddy.Duration    `json:"send_timeout,omitempty"`
	DefaultRegion string            `json:"default_region,omitempty"`
	Message       string            `json:"message,omitempty"`
	SiteName      string            `json:"site_name,omitempty"`
	Domain        string            `json:"domain,omitempty"`
	CodeTTL       caddy.Duration    `json:"code_ttl,omitempty"`
	Page          *page.Config      `json:"page,omitempty"`
}

// codeMessage renders the handler's code message as a customer gets it
// (the page's locale, else English), with testCode as the code: the text
// a DLT-bound sender must send to match its registered template.
func (hc *stepupHandler) codeMessage() (string, error) {
	var pc page.Config
	if hc.Page != nil {
		pc.Title, pc.Locale = hc.Page.Title, hc.Page.Locale
	}
	p, err := page.New(pc, page.Options{SiteName: hc.SiteName, CodeLength: len(testCode), Message: hc.Message,
		CodeTTL: cmp.Or(time.Duration(hc.CodeTTL), stepup.DefaultCodeTTL), Domain: hc.Domain})
	if err != nil {
		return "", fmt.Errorf("rendering the code message: %v", err)
	}
	return p.Message(&http.Request{Header: http.Header{"Accept-Language": {"en"}}}, testCode, ""), nil
}

// dltNote is added to the line of a DLT-bound sender.
const dltNote = "; sent the configured code message with code " + testCode + ", as DLT-bound senders must"

// foundHandler is a stepup handler and where it sits in the config.
type foundHandler struct {
	path string
	raw  json.RawMessage
}

// findHandlers walks a JSON config and returns every object whose
// "handler" is "stepup", in document order.
func findHandlers(cfg []byte) ([]foundHandler, error) {
	var root any
	dec := json.NewDecoder(strings.NewReader(string(cfg)))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("reading the config: %v", err)
	}
	var found []foundHandler
	var walk func(path string, v any) error
	walk = func(path string, v any) error {
		switch v := v.(type) {
		case map[string]any:
			if h, _ := v["handler"].(string); h == "stepup" {
				raw, err := json.Marshal(v)
				if err != nil {
					return err
				}
				found = append(found, foundHandler{path: path, raw: raw})
			}
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				if err := walk(joinPath(path, k), v[k]); err != nil {
					return err
				}
			}
		case []any:
			for i, e := range v {
				if err := walk(path+"["+strconv.Itoa(i)+"]", e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("", root); err != nil {
		return nil, err
	}
	return found, nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// senderIdent is the inline key and name of a sender's JSON.
type senderIdent struct {
	Module string `json:"sender"`
	Name   string `json:"name"`
}

// loadedSender is one sender of a handler, provisioned or not.
type loadedSender struct {
	name string // the sender's name, or its module's if it failed
	s    sender.Sender
	err  error // provisioning error
}

// sendTest sends a test message as configured by opts through the senders
// of every stepup handler in cfg (JSON), printing one line per sender on
// out. It returns how many sends (or provisionings) failed; the error is
// for problems that prevent the test altogether.
func sendTest(ctx context.Context, cfg []byte, opts sendTestOptions, out io.Writer) (failed int, err error) {
	handlers, err := findHandlers(cfg)
	if err != nil {
		return 0, err
	}
	if len(handlers) == 0 {
		return 0, errors.New(`no stepup handler in the config (no object with "handler": "stepup")`)
	}
	if opts.To == "" {
		return 0, errors.New("--to is required: a phone number in international form, or an e-mail address")
	}

	cctx, cancel := commandContext(ctx)
	defer cancel()
	// Handlers are named as the admin API names them.
	named := map[string]string{}
	if dhs, err := configHandlers(cfg, ""); err == nil {
		for _, dh := range dhs {
			named[dh.path] = dh.name
		}
	}

	matched := 0
	var names []string
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	for _, h := range handlers {
		var hc stepupHandler
		if err := json.Unmarshal(h.raw, &hc); err != nil {
			return failed, fmt.Errorf("handler %s: %v", cmp.Or(named[h.path], h.path), err)
		}
		msg, err := testMessage(opts.To, hc.DefaultRegion)
		if err != nil {
			return failed, err
		}
		timeout := cmp.Or(time.Duration(hc.SendTimeout), stepup.DefaultSendTimeout)

		senders := loadSenders(cctx, hc.SendersRaw)
		var selected []loadedSender
		for _, ls := range senders {
			names = append(names, ls.name)
			if opts.Sender == "" || ls.name == opts.Sender {
				selected = append(selected, ls)
			}
		}
		if len(selected) == 0 {
			continue
		}
		matched += len(selected)
		fmt.Fprintf(w, "stepup handler %s, test message to %s:\n", cmp.Or(named[h.path], h.path), sender.MaskDestination(msg.To))

		if opts.Chain {
			failed += chainTest(ctx, w, selected, msg, timeout, &hc)
			continue
		}
		for _, ls := range selected {
			if ls.err != nil {
				fmt.Fprintf(w, "  %s\terror: %v\n", ls.name, ls.err)
				failed++
				continue
			}
			if ok, why := sender.Serves(ls.s, msg); !ok {
				fmt.Fprintf(w, "  %s\tskipped: %s\n", ls.name, why)
				continue
			}
			m := *msg
			m.Text = testText(ls.name)
			note := ""
			if bound, ok := ls.s.(sender.TemplateBound); ok && bound.TemplateBound() {
				text, err := hc.codeMessage()
				if err != nil {
					fmt.Fprintf(w, "  %s\terror: %v\n", ls.name, err)
					failed++
					continue
				}
				m.Text, note = text, dltNote
			}
			budget := timeout
			if t, ok := ls.s.(sender.Timeouter); ok && t.Timeout() > 0 {
				budget = t.Timeout()
			}
			sctx, scancel := context.WithTimeout(ctx, budget)
			start := time.Now()
			err := ls.s.Send(sctx, &m)
			took := time.Since(start).Round(time.Millisecond)
			scancel()
			if err != nil {
				fmt.Fprintf(w, "  %s\terror: %v (%s)\n", ls.name, err, took)
				failed++
				continue
			}
			fmt.Fprintf(w, "  %s\tok (%s%s)\n", ls.name, took, note)
		}
	}
	if matched == 0 {
		if opts.Sender != "" {
			return failed, fmt.Errorf("no sender named %q (senders: %s)", opts.Sender, strings.Join(names, ", "))
		}
		return failed, errors.New("the stepup handlers have no senders")
	}
	return failed, nil
}

// chainTest sends one message through the failover chain of the
// provisioned senders, and prints who delivered it or why none did. When
// a sender of the chain is DLT-bound, the message is the handler's code
// message, which every sender can carry.
func chainTest(ctx context.Context, w io.Writer, selected []loadedSender, msg *sender.Message, timeout time.Duration, hc *stepupHandler) (failed int) {
	var ss []sender.Sender
	m := *msg
	m.Text = testText("the failover chain")
	note := ""
	for _, ls := range selected {
		if ls.err != nil {
			fmt.Fprintf(w, "  %s\terror: %v (left out of the chain)\n", ls.name, ls.err)
			failed++
			continue
		}
		ss = append(ss, ls.s)
		if bound, ok := ls.s.(sender.TemplateBound); ok && bound.TemplateBound() && note == "" {
			text, err := hc.codeMessage()
			if err != nil {
				fmt.Fprintf(w, "  chain\terror: %v\n", err)
				return failed + 1
			}
			m.Text, note = text, dltNote
		}
	}
	start := time.Now()
	by, err := sender.NewChain(ss, sender.ChainOptions{Timeout: timeout}).Send(ctx, &m)
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		// One line per sender that failed, as the chain joins them.
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintf(w, "  chain\terror: %s\n", line)
		}
		return failed + 1
	}
	fmt.Fprintf(w, "  chain\tok: delivered by %s (%s%s)\n", by, took, note)
	return failed
}

// loadSenders provisions each sender on its own, so that one that fails
// (an unset environment variable) does not hide the others.
func loadSenders(ctx caddy.Context, raws []json.RawMessage) []loadedSender {
	var out []loadedSender
	for _, raw := range raws {
		var id senderIdent
		_ = json.Unmarshal(raw, &id)
		ls := loadedSender{name: id.Module}
		if id.Name != "" {
			ls.name = id.Name
		}
		holder := stepupHandler{SendersRaw: []json.RawMessage{raw}}
		mods, err := ctx.LoadModule(&holder, "SendersRaw")
		if err != nil {
			ls.err = err
			out = append(out, ls)
			continue
		}
		s, ok := mods.([]any)[0].(sender.Sender)
		if !ok {
			ls.err = fmt.Errorf("module %T is not a sender", mods.([]any)[0])
			out = append(out, ls)
			continue
		}
		ls.s, ls.name = s, s.Name()
		out = append(out, ls)
	}
	return out
}

// testMessage returns the message sent to to, with defaultRegion for
// national numbers.
func testMessage(to, defaultRegion string) (*sender.Message, error) {
	msg := &sender.Message{
		Code:      testCode,
		Channel:   sender.SMS,
		Policy:    "send-test",
		Challenge: "send-test",
		TTL:       5 * time.Minute,
	}
	if strings.Contains(to, "@") {
		msg.To, msg.Email, msg.Channel = to, to, sender.Email
		return msg, nil
	}
	p, err := sender.ParsePhone(to, defaultRegion)
	if err != nil {
		return nil, fmt.Errorf("--to: %v", err)
	}
	msg.To = p.E164
	return msg, nil
}

// testText is the text of a test message: plainly a test, no code.
func testText(through string) string {
	return "caddy-stepup test message sent through " + through + ". This is not a verification code; there is nothing to enter."
}

// commandContext is a Caddy context for loading modules in a command.
// It carries a config (empty), so that modules log through Caddy's
// default logger: a context without one hands modules zap's development
// logger, which prints a Go stack trace with every warning (a sender's
// routine "sender failed").
func commandContext(ctx context.Context) (caddy.Context, context.CancelFunc) {
	base, err := caddy.ProvisionContext(&caddy.Config{})
	if err != nil {
		// Only logging could fail to open here; fall back to a bare
		// context, which still works.
		base = caddy.Context{}
	}
	base.Context = ctx
	return caddy.NewContext(base)
}
