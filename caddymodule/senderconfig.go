package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

// What the sender modules share. Each module embeds its provider's
// Config, which owns the options (JSON names, defaults, Validate), and
// keeps only its registration, a Provision that replaces placeholders
// and calls the provider's New, and an UnmarshalCaddyfile that parses
// through parseSender.

// delivery is the sender a module built in Provision; Name and Send go
// to it, and what it has of sender.IDSender, sender.Receipter and
// sender.TemplateBound.
type delivery struct {
	s sender.Sender
}

// Name implements sender.Sender.
func (d *delivery) Name() string { return d.s.Name() }

// Send implements sender.Sender.
func (d *delivery) Send(ctx context.Context, msg *sender.Message) error { return d.s.Send(ctx, msg) }

// SendWithID implements sender.IDSender: the provider's message id, or
// "" when the sender has none.
func (d *delivery) SendWithID(ctx context.Context, msg *sender.Message) (string, error) {
	return sender.SendWithID(ctx, d.s, msg)
}

// Receipts implements sender.Receipter.
func (d *delivery) Receipts() bool { return receipts(d.s) }

// ParseReceipt implements sender.Receipter.
func (d *delivery) ParseReceipt(r *http.Request, publicURL string) ([]sender.Receipt, error) {
	return parseReceipt(d.s, r, publicURL)
}

// TemplateBound implements sender.TemplateBound.
func (d *delivery) TemplateBound() bool { return templateBound(d.s) }

// channelDelivery is the delivery of a provider that serves one
// channel. It does not embed delivery: its methods would then sit as
// deep in a module as the Name field of sender.Options, and be
// ambiguous.
type channelDelivery struct {
	s sender.Sender
}

// Name implements sender.Sender.
func (d *channelDelivery) Name() string { return d.s.Name() }

// Send implements sender.Sender.
func (d *channelDelivery) Send(ctx context.Context, msg *sender.Message) error {
	return d.s.Send(ctx, msg)
}

// SendWithID implements sender.IDSender: the provider's message id, or
// "" when the sender has none.
func (d *channelDelivery) SendWithID(ctx context.Context, msg *sender.Message) (string, error) {
	return sender.SendWithID(ctx, d.s, msg)
}

// Receipts implements sender.Receipter.
func (d *channelDelivery) Receipts() bool { return receipts(d.s) }

// ParseReceipt implements sender.Receipter.
func (d *channelDelivery) ParseReceipt(r *http.Request, publicURL string) ([]sender.Receipt, error) {
	return parseReceipt(d.s, r, publicURL)
}

// TemplateBound implements sender.TemplateBound.
func (d *channelDelivery) TemplateBound() bool { return templateBound(d.s) }

// Channel implements sender.Channeler.
func (d *channelDelivery) Channel() sender.Channel { return d.s.(sender.Channeler).Channel() }

// receipts reports whether s takes receipts as configured.
func receipts(s sender.Sender) bool {
	r, ok := s.(sender.Receipter)
	return ok && r.Receipts()
}

// parseReceipt hands a receipt request to s, or refuses it when s takes
// no receipts at all.
func parseReceipt(s sender.Sender, r *http.Request, publicURL string) ([]sender.Receipt, error) {
	rc, ok := s.(sender.Receipter)
	if !ok {
		return nil, fmt.Errorf("%w: %s", sender.ErrReceiptsOff, s.Name())
	}
	return rc.ParseReceipt(r, publicURL)
}

// templateBound reports whether s sends only registered templates.
func templateBound(s sender.Sender) bool {
	t, ok := s.(sender.TemplateBound)
	return ok && t.TemplateBound()
}

// validator is a provider's Config.
type validator interface {
	Validate() error
}

// provision replaces the placeholders in cfg, a copy of a provider's
// configuration as written, and builds the provider's sender from it.
// The module keeps its configuration as written, so that the resolved
// secrets are never part of the config Caddy holds.
func provision[C any, S sender.Sender](kind string, cfg C, build func(C) (S, error)) (sender.Sender, error) {
	if err := replacePlaceholders(kind, &cfg); err != nil {
		return nil, err
	}
	s, err := build(cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// replacePlaceholders replaces the placeholders ({env.X}, {file.path})
// of the string options of cfg, a pointer to a provider's Config, that
// take them (sender.Options tells the tags): an unknown placeholder is
// an error; one that resolves to nothing leaves an "optional" option
// unset, and is an error in a "required" one.
func replacePlaceholders(kind string, cfg any) error {
	repl := caddy.NewReplacer()
	return eachOption(reflect.ValueOf(cfg).Elem(), func(option string, f reflect.StructField, v reflect.Value) error {
		mode, ok := f.Tag.Lookup("placeholder")
		if !ok || v.Kind() != reflect.String || v.String() == "" {
			return nil
		}
		out, err := repl.ReplaceOrErr(v.String(), false, true)
		if err == nil && mode == "required" {
			if _, err = repl.ReplaceOrErr(v.String(), true, true); err != nil {
				err = fmt.Errorf("%v (is its environment variable set?)", err)
			}
		}
		if err != nil {
			return fmt.Errorf("%s sender: %s: %v", kind, option, err)
		}
		v.SetString(out)
		return nil
	})
}

// parseSender parses "sender <kind> [<inline>] [{ ... }]" into cfg, a
// pointer to a provider's Config: the one inline argument into inline
// (none allowed when inline is nil), each option of the block into the
// field of cfg that has its JSON name (string options take one value,
// numbers one above 0, timeout a duration, countries one or more
// regions), or through the parser extra has for its name (an option
// that is not one JSON value, such as a repeatable "voice"). An unknown
// option is an error. It then checks cfg with the provider's Validate,
// the check Provision makes, so that `caddy adapt` points at the sender
// with the words a JSON config gets.
func parseSender(d *caddyfile.Dispenser, kind string, cfg validator, inline *string, extra ...blockOption) error {
	d.Next() // the module name
	if inline != nil && d.NextArg() {
		*inline = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	options := map[string]reflect.Value{}
	eachOption(reflect.ValueOf(cfg).Elem(), func(option string, _ reflect.StructField, v reflect.Value) error {
		options[option] = v
		return nil
	})
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if i := slices.IndexFunc(extra, func(o blockOption) bool { return o.name == key }); i >= 0 {
			if err := extra[i].parse(d); err != nil {
				return err
			}
			continue
		}
		v, ok := options[key]
		if !ok {
			return d.Errf("unrecognized %s option '%s'", kind, key)
		}
		if err := parseOption(d, v); err != nil {
			return err
		}
	}
	return wrap(d, cfg.Validate())
}

// blockOption is an option of a sender's block that parseSender leaves
// to its own parser, which reads the option's values from d.
type blockOption struct {
	name  string
	parse func(d *caddyfile.Dispenser) error
}

// parseOption parses the values of the option d is at into v.
func parseOption(d *caddyfile.Dispenser, v reflect.Value) error {
	switch p := v.Addr().Interface().(type) {
	case *sender.Duration:
		dur, err := durationValue(d)
		if err != nil {
			return err
		}
		*p = sender.Duration(dur)
		return nil
	case *[]string: // countries, the only list
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		regions, err := sender.ParseRegions(args)
		if err != nil {
			return d.Errf("countries: %v", err)
		}
		*p = regions
		return nil
	}
	name := d.Val()
	arg, err := singleArg(d)
	if err != nil {
		return err
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(arg)
	case reflect.Int:
		// 0 is what leaving the option out means.
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 {
			return d.Errf("%s %q: want a whole number above 0", name, arg)
		}
		v.SetInt(int64(n))
	default:
		return d.Errf("option '%s' cannot be set in a Caddyfile", name)
	}
	return nil
}

// eachOption calls fn with each option of the struct v, that is each
// exported field with a JSON name, looking into embedded structs
// (sender.Options), until fn fails.
func eachOption(v reflect.Value, fn func(option string, f reflect.StructField, v reflect.Value) error) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		switch {
		case !f.IsExported():
			continue
		case f.Anonymous && f.Type.Kind() == reflect.Struct:
			if err := eachOption(v.Field(i), fn); err != nil {
				return err
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if err := fn(name, f, v.Field(i)); err != nil {
			return err
		}
	}
	return nil
}
