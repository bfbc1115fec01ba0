// Passkeys (WebAuthn) for nara's account and second-factor pages. Buttons
// with data-passkey="register" or data-passkey="sign-in" start a ceremony;
// the server's options and the authenticator's answer travel as JSON with
// binary fields in base64url, as webauthn-rs expects. No inline script: the
// CSP forbids it, so this file is loaded with defer.
(function () {
  'use strict';
  const b64uToBuf = (s) => {
    const pad = '='.repeat((4 - (s.length % 4)) % 4);
    const bin = atob((s + pad).replace(/-/g, '+').replace(/_/g, '/'));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0)).buffer;
  };
  const bufToB64u = (b) => {
    let bin = '';
    new Uint8Array(b).forEach((x) => { bin += String.fromCharCode(x); });
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  };
  async function post(url, csrf, body) {
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(body || {}),
      credentials: 'same-origin',
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.detail || data.title || ('HTTP ' + r.status));
    return data;
  }
  function say(button, text) {
    const out = document.getElementById(button.getAttribute('aria-describedby') || '');
    if (out) out.textContent = text;
  }
  async function register(button) {
    const csrf = button.dataset.csrf;
    const options = await post('/account/passkeys/begin', csrf);
    const pk = options.publicKey;
    pk.challenge = b64uToBuf(pk.challenge);
    pk.user.id = b64uToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach((c) => { c.id = b64uToBuf(c.id); });
    const cred = await navigator.credentials.create({ publicKey: pk });
    const name = (document.getElementById('passkey-name') || {}).value || 'passkey';
    await post('/account/passkeys/finish', csrf, {
      name,
      credential: {
        id: cred.id,
        rawId: bufToB64u(cred.rawId),
        type: cred.type,
        extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
        response: {
          attestationObject: bufToB64u(cred.response.attestationObject),
          clientDataJSON: bufToB64u(cred.response.clientDataJSON),
          transports: cred.response.getTransports ? cred.response.getTransports() : undefined,
        },
      },
    });
    window.location.reload();
  }
  async function signIn(button) {
    const csrf = button.dataset.csrf;
    const options = await post('/sign-in/passkey/begin', csrf);
    const pk = options.publicKey;
    pk.challenge = b64uToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach((c) => { c.id = b64uToBuf(c.id); });
    const cred = await navigator.credentials.get({ publicKey: pk });
    const done = await post('/sign-in/passkey/finish', csrf, {
      next: button.dataset.next,
      credential: {
        id: cred.id,
        rawId: bufToB64u(cred.rawId),
        type: cred.type,
        extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
        response: {
          authenticatorData: bufToB64u(cred.response.authenticatorData),
          clientDataJSON: bufToB64u(cred.response.clientDataJSON),
          signature: bufToB64u(cred.response.signature),
          userHandle: cred.response.userHandle ? bufToB64u(cred.response.userHandle) : null,
        },
      },
    });
    window.location.assign(done.next || '/account');
  }
  document.addEventListener('DOMContentLoaded', () => {
    if (!window.PublicKeyCredential) return;
    document.querySelectorAll('[data-passkey]').forEach((button) => {
      button.hidden = false;
      button.addEventListener('click', async () => {
        button.disabled = true;
        say(button, '');
        try {
          if (button.dataset.passkey === 'register') await register(button);
          else await signIn(button);
        } catch (e) {
          say(button, e.message || String(e));
        } finally {
          button.disabled = false;
        }
      });
    });
  });
})();
