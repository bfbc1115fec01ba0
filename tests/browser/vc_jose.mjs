// A citizen applies for a resident registration certificate over HTTP, and
// the issued document — a W3C Verifiable Credential secured with JOSE — is
// verified by `jose` (npm), an independent JOSE implementation, against the
// issuing agency's published key set; a tampered copy must fail. Then the
// ministry's official revokes it, and the agency's Bitstring Status List —
// verified by `jose` too, gunzipped by Node's zlib — shows the bit set.
//
//   NARA_URL=http://127.0.0.1:8080 NARA_ACCOUNTS=nara-data/demo-accounts.json node vc_jose.mjs
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { compactVerify, createLocalJWKSet, createRemoteJWKSet } from 'jose';
import jsonld from 'jsonld';
import { contexts as w3cContexts } from '@digitalbazaar/credentials-context';
import * as OTPAuth from 'otpauth';

const base = process.env.NARA_URL;
const accounts = JSON.parse(readFileSync(process.env.NARA_ACCOUNTS, 'utf8'));
const citizen = accounts.find((a) => a.role === 'citizen');
let cookie = '';
const fail = (m) => { console.error(`vc_jose: ${m}`); process.exit(1); };

async function call(path, form) {
  const r = await fetch(base + path, {
    method: form ? 'POST' : 'GET',
    redirect: 'manual',
    headers: { cookie, ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
    body: form ? new URLSearchParams(form).toString() : undefined,
  });
  const set = r.headers.get('set-cookie');
  if (set && set.startsWith('nara_session=')) cookie = set.split(';')[0];
  return r;
}
const csrfIn = (html) => html.match(/name="csrf" value="([^"]+)"/)?.[1] ?? fail('no csrf field');

async function signIn(account) {
  cookie = '';
  const r = await call('/sign-in', { username: account.username, password: account.password });
  if (r.status !== 303) fail(`sign-in ${account.username}: ${r.status}`);
  if (account.totp_secret) {
    const form = await (await call('/sign-in/second-factor')).text();
    const code = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(account.totp_secret) }).generate();
    const next = form.match(/name="next" value="([^"]*)"/)?.[1] ?? '/account';
    const done = await call('/sign-in/second-factor', { csrf: csrfIn(form), next, code });
    if (done.status !== 303) fail(`second factor ${account.username}: ${done.status}`);
  }
}
await signIn(citizen);
let r;
const service = await (await call('/apply/resident-registration-certificate')).text();
const csrf = csrfIn(service);
r = await call('/apply/resident-registration-certificate/start', { csrf });
const page1 = r.headers.get('location') ?? fail(`start: ${r.status}`);
const reference = page1.split('/')[2];
r = await call(page1, { csrf, full_name: 'Kim Minji', use: 'bank' });
if (r.status !== 303) fail(`page 1: ${r.status}`);
r = await call(`/applications/${reference}/submit`, { csrf, 'consent.residence': 'yes' });
if (r.status !== 303) fail(`submit: ${r.status} ${await r.text()}`);
const receipt = await (await call(`/applications/${reference}`)).text();
const docId = receipt.match(/href="\/documents\/([^"]+)"/)?.[1] ?? fail('no document on the receipt');
const doc = await (await call(`/documents/${docId}`)).text();
const token = doc.match(/<textarea id="token"[^>]*>([^<]+)<\/textarea>/)?.[1]?.trim() ?? fail('no token');

const jwks = createRemoteJWKSet(new URL(`${base}/credentials/jwks.json`));
const { payload, protectedHeader } = await compactVerify(token, jwks, { algorithms: ['EdDSA'] });
const vc = JSON.parse(new TextDecoder().decode(payload));
if (protectedHeader.typ !== 'vc+jwt' || protectedHeader.cty !== 'vc') fail(`media types: ${JSON.stringify(protectedHeader)}`);
if (!vc['@context']?.includes('https://www.w3.org/ns/credentials/v2')) fail('not a VC 2.0 context');
if (!vc.type?.includes('ResidentRegistrationCertificate')) fail(`type: ${vc.type}`);
if (vc.credentialSubject?.name !== 'Kim Minji') fail(`subject: ${JSON.stringify(vc.credentialSubject)}`);
if (!vc.issuer?.id?.endsWith('/agencies/KR/GOV/MOIS')) fail(`issuer: ${JSON.stringify(vc.issuer)}`);

// VC Data Model 2.0 §5.2, as a JSON-LD processor reads it (npm jsonld, the
// W3C context from @digitalbazaar/credentials-context, nara's own context
// fetched from the node): every claim must survive expansion.
const documentLoader = async (url) => {
  if (w3cContexts.has(url)) return { contextUrl: null, documentUrl: url, document: w3cContexts.get(url) };
  if (!url.startsWith(base)) fail(`a context outside the node was asked for: ${url}`);
  const r = await fetch(url);
  if (r.status !== 200 || !r.headers.get('content-type')?.startsWith('application/ld+json')) fail(`context ${url}: ${r.status}`);
  return { contextUrl: null, documentUrl: url, document: await r.json() };
};
const [expanded] = await jsonld.expand(vc, { documentLoader, safe: true });
const subject = expanded['https://www.w3.org/2018/credentials#credentialSubject']?.[0] ?? fail('no subject after expansion');
const kept = Object.keys(subject).filter((k) => !k.startsWith('@'));
if (kept.length !== Object.keys(vc.credentialSubject).length) {
  fail(`expansion kept ${kept.length} of ${Object.keys(vc.credentialSubject).length} claims: ${kept}`);
}
if (!(expanded['@type'] ?? []).some((t) => t.endsWith('#ResidentRegistrationCertificate'))) fail(`type after expansion: ${expanded['@type']}`);
console.log(`vc_jose: a JSON-LD processor keeps all ${kept.length} claims and the credential type`);

// A verifier that knows only the credential finds its keys: JWT VC Issuer
// Metadata at the issuer's well-known location.
const issuerUrl = new URL(vc.issuer.id);
const meta = await (await fetch(`${issuerUrl.origin}/.well-known/jwt-vc-issuer${issuerUrl.pathname}`)).json();
if (meta.issuer !== vc.issuer.id) fail(`issuer metadata names ${meta.issuer}`);
await compactVerify(token, createLocalJWKSet(meta.jwks), { algorithms: ['EdDSA'] });
console.log('vc_jose: the issuer metadata alone yields the key that verifies the credential');

const [h, p, s] = token.split('.');
const forged = JSON.parse(Buffer.from(p, 'base64url').toString());
forged.credentialSubject.name = 'Someone Else';
const tampered = `${h}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${s}`;
let refused = false;
try { await compactVerify(tampered, jwks, { algorithms: ['EdDSA'] }); } catch { refused = true; }
if (!refused) fail('a tampered credential verified');

// Revocation, as any verifier sees it: the status list credential named in
// credentialStatus, verified with the same key set, decoded, indexed.
async function revokedBit() {
  const entry = vc.credentialStatus ?? fail('no credentialStatus');
  if (entry.type !== 'BitstringStatusListEntry' || entry.statusPurpose !== 'revocation') fail(`status entry: ${JSON.stringify(entry)}`);
  const url = new URL(entry.statusListCredential);
  const res = await fetch(base + url.pathname);
  if (res.headers.get('content-type') !== 'application/vc+jwt') fail(`status list type: ${res.headers.get('content-type')}`);
  const { payload: listPayload } = await compactVerify(await res.text(), jwks, { algorithms: ['EdDSA'] });
  const list = JSON.parse(new TextDecoder().decode(listPayload));
  if (!list.type.includes('BitstringStatusListCredential')) fail(`list type: ${list.type}`);
  const encoded = list.credentialSubject.encodedList;
  if (!encoded.startsWith('u')) fail('encodedList is not multibase base64url');
  const bits = gunzipSync(Buffer.from(encoded.slice(1), 'base64url'));
  const i = Number(entry.statusListIndex);
  return (bits[i >> 3] & (0x80 >> (i & 7))) !== 0;
}
if (await revokedBit()) fail('revoked before anyone revoked it');
const official = accounts.find((a) => a.username === 'official.mois') ?? fail('no MOIS official in the demo');
await signIn(official);
const caseHtml = await (await call(`/cases/${reference}`)).text();
r = await call(`/cases/${reference}/revoke`, { csrf: csrfIn(caseHtml), credential: docId, reason: 'issued_in_error' });
if (r.status !== 303) fail(`revoke: ${r.status}`);
if (!(await revokedBit())) fail('the status list does not show the revocation');
// The signature still verifies (it is the same token); the status decides.
await compactVerify(token, jwks, { algorithms: ['EdDSA'] });
console.log(`vc_jose: ${vc.type.join(', ')} for ${reference} verified by jose with kid ${protectedHeader.kid}; a tampered copy is refused; after revocation its bit ${vc.credentialStatus.statusListIndex} in ${vc.credentialStatus.statusListCredential} is set`);
