package sender_test

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/caddy-stepup/caddy-stepup/sender"
)

// A receiver checks each request before it passes the code on.
func ExampleVerifyWebhook() {
	key, err := sender.ParseWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	http.HandleFunc("POST /sms", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		err = sender.VerifyWebhook(key,
			r.Header.Get("webhook-id"),
			r.Header.Get("webhook-timestamp"),
			r.Header.Get("webhook-signature"),
			body, time.Now(), sender.DefaultWebhookTolerance)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		// Decode body and hand the message to the SMS gateway; answer
		// 2xx once it took it, 429 or 5xx to have it retried.
		w.WriteHeader(http.StatusNoContent)
	})
}

func ExampleMaskPhone() {
	fmt.Println(sender.MaskPhone("+919876543210"))
	fmt.Println(sender.MaskPhone("+14155550100"))
	fmt.Println(sender.MaskPhone("not a number"))
	// Output:
	// +91******3210
	// +1******0100
	// +***
}

func ExampleParsePhone() {
	p, err := sender.ParsePhone("098765 43210", "IN")
	if err != nil {
		panic(err)
	}
	fmt.Println(p.E164, p.Region, p.CountryCode, p.Type)
	fmt.Println(p) // a Phone prints masked
	// Premium-rate numbers parse; the caller refuses them.
	p, err = sender.ParsePhone("+44 901 234 5678", "")
	fmt.Println(p.Type, err)
	_, err = sender.ParsePhone("9876543210", "")
	fmt.Println(err)
	// Output:
	// +919876543210 IN 91 mobile
	// +91******3210
	// premium_rate <nil>
	// sender: invalid phone number: not in international form
}

func ExampleSegments() {
	fmt.Println(sender.Segments("493817 is your Demo Shop verification code.\n\n@shop.example #493817"))
	fmt.Println(sender.Segments("Pay €10 to {ACME}"))
	fmt.Println(sender.Segments("आपका कोड 493817 है"))
	// Output:
	// GSM-7 66 1
	// GSM-7 20 1
	// UCS-2 18 1
}

func ExamplePhoneRules() {
	rules := sender.PhoneRules{Allow: []string{"IN", "GB"}}
	for _, n := range []string{"+919876543210", "+14155550100", "+449012345678"} {
		p, err := sender.ParsePhone(n, "")
		if err != nil {
			panic(err)
		}
		fmt.Println(p, rules.Check(p))
	}
	// Output:
	// +91******3210 <nil>
	// +1******0100 sender: phone number refused: numbers of region US are not accepted
	// +44******5678 sender: phone number refused: premium_rate numbers are not accepted
}
