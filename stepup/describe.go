package stepup

import (
	"errors"
	"net/http"

	"github.com/caddy-stepup/caddy-stepup/stepup/fields"
	"github.com/caddy-stepup/caddy-stepup/stepup/page"
)

// describer renders a describe template such as
// "Pay {form.amount} to {form.merchant}" from a request: {form.NAME}
// (urlencoded or multipart fields), {json.PATH} (dotted path into a JSON
// body, array indexes as numbers) and {query.NAME}. Package fields reads
// the fields strictly and cleans and caps what is shown.
type describer struct {
	tmpl *fields.Template
}

// parseDescribe compiles a describe template. Unknown placeholder sources
// are an error, so that a typo shows at provision, not in an SMS.
func parseDescribe(tmpl string) (*describer, error) {
	t, err := fields.ParseTemplate(tmpl)
	if err != nil {
		return nil, err
	}
	return &describer{tmpl: t}, nil
}

// readsRequest reports whether the description shows text taken from the
// request.
func (d *describer) readsRequest() bool { return d.tmpl.ReadsRequest() }

// render fills the template from the request and its (already read) body.
// Values are cleaned and capped; a missing value shows as "?". The error
// matches fields.ErrAmbiguous when the app behind us could read the
// described fields otherwise than they would be shown: the request must
// be refused.
func (d *describer) render(r *http.Request, body []byte) (string, error) {
	return d.tmpl.Render(r, body)
}

// elsewhere refuses (fields.ErrAmbiguous) a request that carries a
// described field in a cookie or a header, where PHP's $_REQUEST,
// ASP.NET's Request[] or Spring 6.2's data binder read it
// (fields.Template.Elsewhere). A nil describer refuses nothing.
func (d *describer) elsewhere(r *http.Request) error {
	if d == nil {
		return nil
	}
	return d.tmpl.Elsewhere(r)
}

// refuseFields answers a request whose body or fields the engine will not
// read: 413 for a body over max_body, 400 when the fields a describe or
// an identity request source reads are ambiguous (package fields says
// what that covers). It reports false, and writes nothing, for other
// errors.
func (e *Engine) refuseFields(w http.ResponseWriter, r *http.Request, policy string, err error) bool {
	switch {
	case errors.Is(err, fields.ErrTooLarge):
		e.refuse(w, r, policy, http.StatusRequestEntityTooLarge, page.StateTooLarge, "too_large", nil)
		return true
	case errors.Is(err, fields.ErrAmbiguous):
		// The error names the field as configured, never a value.
		e.refuse(w, r, policy, http.StatusBadRequest, page.StateAmbiguous, "ambiguous_fields", err)
		return true
	}
	return false
}

// refuse answers a protected request that stepup will not take on, before
// anything was created or sent, and records why.
func (e *Engine) refuse(w http.ResponseWriter, r *http.Request, policy string, status int, st page.State, reason string, err error) {
	e.emit(r, &Event{Kind: EventRequestRefused, Policy: policy, Outcome: reason, Err: err})
	e.renderStatus(w, r, status, st, nil)
}
