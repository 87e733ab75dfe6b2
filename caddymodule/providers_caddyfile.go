package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The Caddyfile syntax of the sender modules. Each option is the JSON
// option of the same name; every sender but log also takes
//
//	name      <name>
//	countries <regions...>
//	timeout   <duration>
//
// (email no countries). See parseSender.

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender webhook <url> [{
//		signing_secret <whsec_...>
//		name           <name>
//		countries      <regions...>
//		timeout        <duration>
//	}]
func (m *WebhookSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if err := parseSender(d, "webhook", &m.Config, &m.URL); err != nil {
		return err
	}
	if m.URL == "" {
		return d.Err("sender webhook needs a URL")
	}
	return nil
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender log
func (m *LogSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // "log"
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(d.Nesting()) {
		return d.Errf("sender log takes no options, got '%s'", d.Val())
	}
	return nil
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender twilio {
//		account_sid           <AC...>
//		auth_token            <token>
//		api_key               <SK...>
//		api_secret            <secret>
//		from                  <number|sender id>
//		messaging_service_sid <MG...>
//		endpoint              <url>
//		name                  <name>
//		countries             <regions...>
//		timeout               <duration>
//	}
//
// Give auth_token, or api_key and api_secret (and auth_token too for
// status callbacks, which Twilio signs with it); from, or
// messaging_service_sid.
func (m *TwilioSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parseSender(d, "twilio", &m.Config, nil)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender vonage {
//		api_key          <key>
//		api_secret       <secret>
//		signature_secret <secret>
//		signature_method md5hash|md5|sha1|sha256|sha512
//		receipt_token    <token>
//		from             <number|sender id>
//		entity_id        <DLT entity id>
//		content_id       <DLT template id>
//		endpoint         <url>
//		name             <name>
//		countries        <regions...>
//		timeout          <duration>
//	}
//
// Give api_secret, or signature_secret to sign every request.
func (m *VonageSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parseSender(d, "vonage", &m.Config, nil)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender msg91 {
//		auth_key      <key>
//		template_id   <id>
//		code_var      <variable>
//		ttl_var       <variable>
//		receipt_token <token>
//		endpoint      <url>
//		name          <name>
//		countries     <regions...>
//		timeout       <duration>
//	}
func (m *MSG91Sender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parseSender(d, "msg91", &m.Config, nil)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender sns {
//		region             <region>
//		access_key_id      <key>
//		secret_access_key  <secret>
//		session_token      <token>
//		sender_id          <sender id>
//		origination_number <number>
//		max_price          <USD>
//		entity_id          <DLT entity id>
//		template_id        <DLT template id>
//		endpoint           <url>
//		name               <name>
//		countries          <regions...>
//		timeout            <duration>
//	}
//
// Without access_key_id, credentials come from the AWS SDK's default
// chain.
func (m *SNSSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parseSender(d, "sns", &m.Config, nil)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender whatsapp {
//		phone_number_id <id>
//		access_token    <token>
//		template        <name>
//		language        <code>
//		version         <v26.0>
//		app_secret      <secret>
//		verify_token    <token>
//		endpoint        <url>
//		name            <name>
//		countries       <regions...>
//		timeout         <duration>
//	}
func (m *WhatsAppSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parseSender(d, "whatsapp", &m.Config, nil)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender email {
//		host        <smtp host>
//		port        <port>
//		tls         starttls|implicit|none
//		username    <user>
//		password    <password>
//		auth        plain|login|xoauth2
//		oauth_token <{file.PATH}|{env.NAME}>
//		from        <address>
//		subject     <text>
//		name        <name>
//		timeout     <duration>
//	}
func (m *EmailSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parseSender(d, "email", &m.Config, nil)
}
