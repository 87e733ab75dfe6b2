package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-stepup/caddy-stepup/sender/twilio"
	"github.com/caddy-stepup/caddy-stepup/sender/vonage"
)

// The Caddyfile syntax of the sender modules. Each option is the JSON
// option of the same name (but voice, one entry of voices); every sender
// but log also takes
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

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender twilio_voice {
//		account_sid <AC...>
//		auth_token  <token>
//		api_key     <SK...>
//		api_secret  <secret>
//		from        <E.164 number>
//		voice       <locale> <language> [<voice>]
//		repeat      <1 to 3>
//		endpoint    <url>
//		name        <name>
//		countries   <regions...>
//		timeout     <duration>
//	}
//
// Give auth_token, or api_key and api_secret. voice may be repeated, once
// per locale.
func (m *TwilioVoiceSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parseSender(d, "twilio_voice", &m.VoiceConfig, nil, blockOption{"voice", func(d *caddyfile.Dispenser) error {
		args := d.RemainingArgs()
		if len(args) < 2 || len(args) > 3 {
			return d.ArgErr()
		}
		v := twilio.Speaker{Locale: args[0], Language: args[1]}
		if len(args) == 3 {
			v.Voice = args[2]
		}
		m.Voices = append(m.Voices, v)
		return nil
	}})
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender twilio_rcs {
//		account_sid           <AC...>
//		auth_token            <token>
//		api_key               <SK...>
//		api_secret            <secret>
//		messaging_service_sid <MG...>
//		fallback              sms|none
//		fallback_from         <number|sender id>
//		endpoint              <url>
//		name                  <name>
//		countries             <regions...>
//		timeout               <duration>
//	}
func (m *TwilioRCSSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parseSender(d, "twilio_rcs", &m.RCSConfig, nil)
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender vonage_voice {
//		application_id   <uuid>
//		private_key      <PEM>
//		private_key_file <path>
//		from             <number>
//		voice            <locale> <language> [<style>]
//		repeat           <1 to 3>
//		endpoint         <url>
//		name             <name>
//		countries        <regions...>
//		timeout          <duration>
//	}
//
// Give private_key (usually {file.path} or {env.VAR}) or
// private_key_file. voice may be repeated, once per locale.
func (m *VonageVoiceSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parseSender(d, "vonage_voice", &m.VoiceConfig, nil, blockOption{"voice", func(d *caddyfile.Dispenser) error {
		args := d.RemainingArgs()
		if len(args) < 2 || len(args) > 3 {
			return d.ArgErr()
		}
		v := vonage.Speaker{Locale: args[0], Language: args[1]}
		if len(args) == 3 {
			n, err := strconv.Atoi(args[2])
			if err != nil || n < 0 {
				return d.Errf("voice %s: style %q: want a whole number, 0 or more", args[0], args[2])
			}
			v.Style = n
		}
		m.Voices = append(m.Voices, v)
		return nil
	}})
}

// UnmarshalCaddyfile sets up the sender from Caddyfile tokens. Syntax:
//
//	sender vonage_rcs {
//		application_id   <uuid>
//		private_key      <PEM>
//		private_key_file <path>
//		api_key          <key>
//		api_secret       <secret>
//		from             <RCS agent id>
//		endpoint         <url>
//		name             <name>
//		countries        <regions...>
//		timeout          <duration>
//	}
//
// Give application_id and its key, or api_key and api_secret.
func (m *VonageRCSSender) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return parseSender(d, "vonage_rcs", &m.RCSConfig, nil)
}
