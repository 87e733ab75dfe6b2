package caddymodule

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-stepup/caddy-stepup/stepup/page"
)

// previewCommand is "caddy stepup preview".
func previewCommand() *cobra.Command {
	sub := &cobra.Command{
		Use:   "preview --config <path> [--adapter <name>] --out <dir> [--template <file>] [--handler <name>]",
		Short: "Writes every page state in every configured locale as HTML files",
		Long: `
Renders the challenge page in every state (the challenge and its variants,
expired, locked, rate-limited, ...) with sample data, in every locale the
handler serves (its page locale if set, else every locale shipped), with the
handler's branding (page title, logo, brand color, support URL, template),
and writes each as <out>/<handler>/<state>.<locale>.html, with an index.html
per handler. --template renders another template file instead of the
configured one, to try it before deploying it. The samples hold no real
code, number or token. Run it with the server's environment so that
placeholders such as {env.X} resolve.
`,
		Args: cobra.NoArgs,
	}
	sub.Flags().StringP("config", "c", "", "Configuration file (required)")
	sub.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	sub.Flags().StringP("out", "o", "", "Directory to write the pages to (required)")
	sub.Flags().String("template", "", "A page template file to render instead of the configured one")
	sub.Flags().String("handler", "", "Only the handler of this name (see caddy stepup status)")
	sub.RunE = func(cmd *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			configFile, dir := fl.String("config"), fl.String("out")
			if configFile == "" || dir == "" {
				return caddy.ExitCodeFailedStartup, errors.New("--config and --out are required")
			}
			cfg, _, _, err := caddycmd.LoadConfig(configFile, fl.String("adapter"))
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			if err := writePreviews(cfg, dir, fl.String("template"), fl.String("handler"), cmd.OutOrStdout()); err != nil {
				return 1, err
			}
			return 0, nil
		})(cmd, args)
	}
	return sub
}

// previewPages is the engine's page preview for a branding: the sample
// names and a function that renders one sample in one locale. (The
// engine's preview support may move to another package: this is the one
// place that calls it.)
func previewPages(pc page.Config, siteName string) (samples []string, render func(sample, locale string) (int, []byte), err error) {
	h, err := page.PreviewHandler(pc, siteName)
	if err != nil {
		return nil, nil, err
	}
	return page.Samples(), func(sample, locale string) (int, []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/"+sample+"?lang="+locale, nil)
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}, nil
}

// unsafeFileChars are replaced in a handler's name to make a directory.
var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._,=+-]+`)

// writePreviews writes the pages of every stepup handler of cfg (JSON)
// into dir.
func writePreviews(cfg []byte, dir, template, only string, out io.Writer) error {
	handlers, err := configHandlers(cfg, only)
	if err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	for _, dh := range handlers {
		h := dh.h
		var pc page.Config
		if h.Page != nil {
			pc = *h.Page
		}
		if template != "" {
			pc.Template = template
		}
		pc.Template = repl.ReplaceKnown(pc.Template, "")
		if err := pc.Validate(); err != nil {
			return fmt.Errorf("%s: %v", dh.name, err)
		}
		site := repl.ReplaceKnown(firstNonEmpty(h.SiteName, h.Domain), "")
		samples, render, err := previewPages(pc, site)
		if err != nil {
			return fmt.Errorf("%s: %v", dh.name, err)
		}
		locales := page.Locales()
		if pc.Locale != "" {
			locales = []string{pc.Locale}
		}
		sub := filepath.Join(dir, handlerDir(dh.name))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		var index strings.Builder
		index.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>` + html.EscapeString(dh.name) +
			`: page previews</title></head><body><main><h1>` + html.EscapeString(dh.name) + `</h1><ul>`)
		n := 0
		for _, s := range samples {
			index.WriteString("<li>" + html.EscapeString(s))
			for _, l := range locales {
				// Some states answer 4xx or 5xx (expired, unavailable):
				// what matters is that a page was rendered.
				status, body := render(s, l)
				if !strings.Contains(string(body), "<html") {
					return fmt.Errorf("%s: rendering %s in %s: HTTP %d: %s", dh.name, s, l, status, strings.TrimSpace(string(body)))
				}
				name := s + "." + l + ".html"
				if err := os.WriteFile(filepath.Join(sub, name), body, 0o644); err != nil {
					return err
				}
				index.WriteString(` <a href="` + html.EscapeString(name) + `" lang="` + html.EscapeString(l) + `">` + html.EscapeString(l) + `</a>`)
				n++
			}
			index.WriteString("</li>")
		}
		index.WriteString("</ul></main></body></html>\n")
		if err := os.WriteFile(filepath.Join(sub, "index.html"), []byte(index.String()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: %d pages (%d states, locales %s) in %s\n", dh.name, n, len(samples), strings.Join(locales, " "), sub)
	}
	return nil
}

// handlerDir is the directory name of a handler's pages.
func handlerDir(name string) string {
	return strings.Trim(unsafeFileChars.ReplaceAllString(name, "_"), "_.")
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
