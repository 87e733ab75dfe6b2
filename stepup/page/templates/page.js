// Passkeys: where the page offers one (a challenge a passkey may answer,
// or the offer to create one after a code), the browser is asked for it
// by WebAuthn, and the answer is posted with the page's form. Without
// this script, or without WebAuthn, the buttons stay hidden and the
// code works as ever.
(function () {
  'use strict';
  var island = document.getElementById('stepup-data'), data;
  if (!island || !window.PublicKeyCredential || !navigator.credentials) return;
  try { data = JSON.parse(island.textContent); } catch (e) { return; }
  var t = data.t || {};

  function dec(s) {
    s = String(s).replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) s += '=';
    var bin = window.atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function enc(buf) {
    if (!buf) return null;
    var bytes = new Uint8Array(buf), bin = '';
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return window.btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function descriptors(list) {
    var out = [];
    for (var i = 0; list && i < list.length; i++) {
      var d = { type: list[i].type, id: dec(list[i].id) };
      if (list[i].transports) d.transports = list[i].transports;
      out.push(d);
    }
    return out;
  }
  function showError(msg) {
    var region = document.getElementById('passkey-error-live');
    if (!region) return;
    region.textContent = '';
    var p = document.createElement('p'), icon = document.getElementById('error-icon');
    p.className = 'error';
    p.id = 'passkey-error';
    if (icon && icon.content) p.appendChild(icon.content.cloneNode(true));
    var span = document.createElement('span');
    span.textContent = msg;
    p.appendChild(span);
    region.appendChild(p);
  }
  function wire(button, form, field, ask) {
    var label = button.textContent, busy = false;
    button.hidden = false;
    button.addEventListener('click', function () {
      if (busy) return;
      busy = true;
      button.setAttribute('aria-disabled', 'true');
      if (t.working) button.textContent = t.working;
      ask().then(function (value) {
        field.value = JSON.stringify(value);
        form.submit();
      }, function () {
        // Cancelled, timed out, or no such passkey here: nothing was
        // sent, and the code remains.
        busy = false;
        button.removeAttribute('aria-disabled');
        button.textContent = label;
        showError(t.passkeyFailed);
      });
    });
  }

  // A challenge a passkey may answer: navigator.credentials.get.
  var o = data.passkey, button = document.getElementById('passkey-button');
  if (o && button) {
    wire(button, document.getElementById('passkey-form'), document.getElementById('assertion'), function () {
      return navigator.credentials.get({ publicKey: {
        challenge: dec(o.challenge), rpId: o.rpId, timeout: o.timeout,
        userVerification: o.userVerification, allowCredentials: descriptors(o.allowCredentials)
      } }).then(function (c) {
        var r = c.response;
        return { id: c.id, rawId: enc(c.rawId), type: c.type, authenticatorAttachment: c.authenticatorAttachment || undefined,
          clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
          response: { clientDataJSON: enc(r.clientDataJSON), authenticatorData: enc(r.authenticatorData),
            signature: enc(r.signature), userHandle: enc(r.userHandle) } };
      });
    });
  }

  // The offer after a code: navigator.credentials.create.
  var co = data.create, enrol = document.getElementById('enrol-button');
  if (co && enrol) {
    wire(enrol, document.getElementById('enrol-form'), document.getElementById('credential'), function () {
      var pk = {
        challenge: dec(co.challenge), rp: co.rp, timeout: co.timeout,
        user: { id: dec(co.user.id), name: co.user.name, displayName: co.user.displayName },
        pubKeyCredParams: co.pubKeyCredParams, excludeCredentials: descriptors(co.excludeCredentials),
        authenticatorSelection: co.authenticatorSelection, attestation: co.attestation
      };
      return navigator.credentials.create({ publicKey: pk }).then(function (c) {
        var r = c.response;
        return { id: c.id, rawId: enc(c.rawId), type: c.type, authenticatorAttachment: c.authenticatorAttachment || undefined,
          clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {},
          response: { clientDataJSON: enc(r.clientDataJSON), attestationObject: enc(r.attestationObject),
            transports: r.getTransports ? r.getTransports() : [] } };
      });
    });
  }
})();

// The code page works without this script; with it the page counts down,
// submits once every digit is in (typed, pasted, or filled by the WebOTP
// API from the SMS), and says what changed through a polite live region.
(function () {
  'use strict';
  var data, form = document.getElementById('verify'),
    input = document.getElementById('code'),
    island = document.getElementById('stepup-data');
  if (!form || !input || !island) return;
  try { data = JSON.parse(island.textContent); } catch (e) { return; }

  var n = data.n, t = data.t || {}, lang = document.documentElement.lang || 'en';
  var button = form.querySelector('button[type=submit]');
  var label = button ? button.textContent : '';
  var announcer = document.getElementById('announce');
  var started = Date.now(), busy = false, expired = false, otp = null;
  var plural = null;
  try { plural = new Intl.PluralRules(lang); } catch (e) { /* "other" forms below */ }

  // Digits of any script (Arabic-Indic, Devanagari, full width...) as
  // ASCII; everything else (spaces, dashes) dropped.
  var zeros = [0x30, 0x660, 0x6f0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66, 0xe50, 0xff10];
  function digits(s) {
    var out = '';
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      for (var j = 0; j < zeros.length; j++) {
        if (c >= zeros[j] && c <= zeros[j] + 9) { out += String(c - zeros[j]); break; }
      }
    }
    return out.slice(0, n);
  }

  function fill(s, name, value) { return s.split('{' + name + '}').join(value); }
  function unit(forms, v) {
    var cat = 'other';
    if (plural) { try { cat = plural.select(v); } catch (e) { /* keep other */ } }
    return fill(forms[cat] || forms.other, 'n', String(v));
  }
  // duration says s seconds as the server does: "5 minutes", "30 seconds".
  function duration(s) {
    var d = data.dur || {};
    if (s <= 0) return d.moment;
    if (s < 60) return unit(d.seconds, s);
    if (s < 3600) return unit(d.minutes, Math.ceil(s / 60));
    return unit(d.hours, Math.ceil(s / 3600));
  }
  function left(total) { return Math.max(0, total - Math.floor((Date.now() - started) / 1000)); }
  function announce(msg) {
    if (!announcer || !msg) return;
    announcer.textContent = '';
    window.setTimeout(function () { announcer.textContent = msg; }, 50);
  }
  function setText(el, s) { if (el && el.textContent !== s) el.textContent = s; }

  // Errors sit under the field, are read with it (aria-describedby) and
  // announced (the region around them is aria-live).
  function describe() {
    var ids = [];
    if (document.getElementById('code-error')) ids.push('code-error');
    if (document.getElementById('code-meta')) ids.push('code-meta');
    if (ids.length) input.setAttribute('aria-describedby', ids.join(' ')); else input.removeAttribute('aria-describedby');
  }
  function showError(msg) {
    var region = document.getElementById('code-error-live'), p = document.getElementById('code-error');
    if (!region) return;
    if (!p) {
      p = document.createElement('p');
      p.id = 'code-error';
      p.className = 'error';
      var icon = document.getElementById('error-icon');
      if (icon && icon.content) p.appendChild(icon.content.cloneNode(true));
      p.appendChild(document.createElement('span'));
      region.appendChild(p);
    }
    (p.querySelector('span') || p).textContent = msg;
    input.setAttribute('aria-invalid', 'true');
    describe();
  }
  function clearError() {
    var p = document.getElementById('code-error');
    if (p) p.parentNode.removeChild(p);
    input.removeAttribute('aria-invalid');
    describe();
  }

  function submitNow() {
    if (busy || expired) return;
    if (form.requestSubmit) { form.requestSubmit(button); return; }
    if (onSubmit(null)) form.submit();
  }
  // onSubmit checks the code's shape before it costs a round trip (and
  // never an attempt: the server does not count malformed codes either).
  function onSubmit(ev) {
    var v = digits(input.value);
    if (busy) { if (ev) ev.preventDefault(); return false; }
    if (v.length !== n) {
      if (ev) ev.preventDefault();
      showError(data.format);
      input.focus();
      return false;
    }
    input.value = v;
    busy = true;
    if (otp) otp.abort();
    if (button) {
      button.setAttribute('aria-disabled', 'true');
      if (t.verifying) button.textContent = t.verifying;
    }
    return true;
  }
  form.addEventListener('submit', onSubmit);
  // Back to a page the browser kept (back/forward cache): ready again.
  window.addEventListener('pageshow', function (ev) {
    if (!ev.persisted) return;
    busy = false;
    if (button) { button.removeAttribute('aria-disabled'); button.textContent = label; }
  });

  input.addEventListener('input', function () {
    var v = digits(input.value);
    if (v !== input.value) input.value = v;
    if (input.getAttribute('aria-invalid') === 'true' && v.length > 0) clearError();
    if (v.length === n) submitNow();
  });
  // Pasted text may carry spaces or words ("123 456", "Code: 123456"):
  // keep its digits whatever maxlength would have cut.
  input.addEventListener('paste', function (ev) {
    var text = (ev.clipboardData || window.clipboardData);
    text = text && text.getData ? text.getData('text') : '';
    var v = digits(text || '');
    if (!v) return;
    ev.preventDefault();
    input.value = v;
    clearError();
    if (v.length === n) submitNow();
  });

  // WebOTP: Chrome on Android offers the code of an SMS whose last line
  // is "@host #code" for this host.
  if ('OTPCredential' in window && window.AbortController && navigator.credentials) {
    otp = new AbortController();
    navigator.credentials.get({ otp: { transport: ['sms'] }, signal: otp.signal }).then(function (cred) {
      if (!cred || !cred.code || busy) return;
      input.value = digits(cred.code);
      if (input.value.length === n) submitNow();
    }).catch(function () { /* no SMS, cancelled, or not supported here */ });
  }

  // Countdowns: the visible text follows the clock; the live region
  // speaks only when something can be done (a new code) or has ended.
  var expiry = document.getElementById('expiry');
  var wait = document.getElementById('resend-wait');
  var timer = null;
  function tick() {
    var more = false;
    if (typeof data.expires === 'number' && !expired) {
      var e = left(data.expires);
      if (e > 0) {
        setText(expiry, fill(data.expiresText || t.expiresIn, 'time', duration(e)));
        more = true;
      } else {
        expired = true;
        if (otp) otp.abort();
        setText(expiry, t.expired);
        announce(t.expired);
        var again = document.getElementById('start-again');
        if (again) again.hidden = false;
        if (wait) { wait.hidden = true; }
      }
    }
    if (wait && !wait.hidden && typeof data.resend === 'number' && data.resend > 0) {
      var r = left(data.resend);
      if (r > 0) {
        setText(wait, fill(t.resendIn, 'time', duration(r)));
        more = true;
      } else {
        offerResend();
      }
    }
    if (!more && timer) { window.clearInterval(timer); timer = null; }
  }
  // offerResend replaces the waiting text by the form the page shows once
  // the cooldown is over.
  function offerResend() {
    var csrf = form.querySelector('input[name=csrf]');
    if (!wait || !data.resendUrl || !csrf) return;
    var f = document.createElement('form');
    f.method = 'post';
    f.action = data.resendUrl;
    var h = document.createElement('input');
    h.type = 'hidden';
    h.name = 'csrf';
    h.value = csrf.value;
    var b = document.createElement('button');
    b.type = 'submit';
    b.className = 'link';
    b.id = 'resend-button';
    b.textContent = t.resend;
    f.appendChild(h);
    f.appendChild(b);
    wait.parentNode.replaceChild(f, wait);
    wait = null;
    announce(t.resendReady);
  }
  if (expiry || wait) {
    tick();
    timer = window.setInterval(tick, 1000);
  }

  // Delivery: while the code is on its way, ask the handler how it goes
  // and say it ("Delivered", "Not delivered: we sent it by WhatsApp
  // instead"). A send that failed, or a challenge that ended, reloads
  // the page, which then says so and offers what can be done.
  var line = document.getElementById('delivery');
  var waiting = { sending: 1, sent: 1, failed_over: 1 };
  function deliveryText(state, ch) {
    if (state === 'failed_over') return t['delivery.failed_over_' + ch] || t['delivery.failed_over'] || '';
    return t['delivery.' + state] || '';
  }
  if (line && data.status && window.fetch && waiting[data.delivery]) {
    var polls = 0, shown = data.delivery;
    var poll = function () {
      if (expired || busy || polls++ >= 90) return;
      window.fetch(data.status, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (!s || typeof s.state !== 'string') return;
          if (s.state === 'failed' || !(s.state in waiting || s.state === 'delivered' || s.state === 'not_delivered')) {
            window.location.reload();
            return;
          }
          var text = deliveryText(s.state, s.channel);
          if (s.state !== shown) {
            shown = s.state;
            setText(line, text);
            line.hidden = !text;
          }
          if (waiting[s.state]) window.setTimeout(poll, polls < 15 ? 2000 : 5000);
        }, function () { window.setTimeout(poll, 5000); });
    };
    window.setTimeout(poll, 1000);
  }
})();
