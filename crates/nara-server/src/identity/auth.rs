//! Authentication: who is making a request.
//!
//! People sign in with a password (argon2id) and, for staff, a TOTP second
//! factor or a recovery code; they then hold a server-side session named by a
//! random id in a `Secure`/`HttpOnly`/`SameSite=Lax` cookie, of which the
//! database keeps only the SHA-256 digest. Programs present an operator API
//! token (`Authorization: Bearer nara_at_…`), scoped and expiring, also kept
//! as a digest. Either way the result is a [`Principal`], which the policy
//! point ([`crate::policy`]) decides on.
//!
//! Secrets never reach a log: tokens, passwords and codes are not `Debug`
//! printed anywhere, and events name accounts by username only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use nara_core::identity::{AccountKind, Grant, Role};
use nara_store::Store;
use nara_store::identity::{Account, SessionRecord};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::problem::Problem;

// ------------------------------------------------------------------ keys

/// The node's identity secrets: the key that turns national identifiers into
/// keyed hashes, and the OpenID Connect signing key. Nodes that share a
/// database must share this file.
#[derive(Clone)]
pub struct IdentityKeys {
    national_id: [u8; 32],
    pub oidc: ed25519_dalek::SigningKey,
}

impl IdentityKeys {
    pub fn ephemeral() -> IdentityKeys {
        IdentityKeys::from_bytes(&rand::random::<[u8; 64]>())
    }

    fn from_bytes(b: &[u8; 64]) -> IdentityKeys {
        let mut national_id = [0u8; 32];
        national_id.copy_from_slice(&b[..32]);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&b[32..]);
        IdentityKeys {
            national_id,
            oidc: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// Loads `identity.key` (hex, mode 0600), creating it on first start.
    pub fn load_or_create(path: &std::path::Path) -> anyhow::Result<IdentityKeys> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 64]>::try_from(b).ok())
                    .ok_or_else(|| {
                        anyhow::anyhow!("{}: not a nara identity key", path.display())
                    })?;
                Ok(IdentityKeys::from_bytes(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes: [u8; 64] = rand::random();
                crate::keyfile::write_private(path, &hex::encode(bytes))?;
                tracing::info!(key = %path.display(), "created the identity key");
                Ok(IdentityKeys::from_bytes(&bytes))
            }
            Err(e) => Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        }
    }

    /// The keyed hash stored in place of a national identifier: equal
    /// identifiers give equal hashes, and without the key the 10^13 possible
    /// numbers cannot be tried offline.
    pub fn national_id_hash(&self, digits: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.national_id)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"nara national id v1\0");
        mac.update(digits.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The tag of a device cookie: `nonce` was issued to a browser that
    /// signed in as `username` (OWASP's device cookies against lock-outs).
    pub fn device_tag(&self, username: &str, nonce: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.national_id)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"nara device cookie v1\0");
        mac.update(username.as_bytes());
        mac.update(b"\0");
        mac.update(nonce.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The exchange gateway's Ed25519 key, derived from the identity key: it
    /// signs message records and forwarded requests (`gateway:NODE`).
    pub fn gateway_key(&self) -> ed25519_dalek::SigningKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.national_id)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"nara gateway key v1");
        ed25519_dalek::SigningKey::from_bytes(&mac.finalize().into_bytes().into())
    }

    /// An issuing agency's Ed25519 key for verifiable credentials, derived
    /// from the identity key and the agency's identifier.
    pub fn credential_key(&self, agency: &str) -> ed25519_dalek::SigningKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.national_id)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"nara credential key v1\0");
        mac.update(agency.as_bytes());
        ed25519_dalek::SigningKey::from_bytes(&mac.finalize().into_bytes().into())
    }

    /// The key that seals TOTP secrets at rest, derived from the identity key.
    fn totp_cipher(&self) -> chacha20poly1305::XChaCha20Poly1305 {
        use chacha20poly1305::KeyInit;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.national_id)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(b"nara totp sealing key v1");
        let key = mac.finalize().into_bytes();
        chacha20poly1305::XChaCha20Poly1305::new(&key)
    }

    /// Seals a TOTP secret for the database (XChaCha20-Poly1305, random
    /// nonce): a copy of the database alone does not yield the codes.
    pub fn seal_totp(&self, secret: &str) -> Option<String> {
        use chacha20poly1305::aead::Aead;
        let nonce: [u8; 24] = rand::random();
        let sealed = self
            .totp_cipher()
            .encrypt(
                chacha20poly1305::XNonce::from_slice(&nonce),
                secret.as_bytes(),
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(format!("v1:{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Opens a sealed TOTP secret; `None` if it was not sealed by this key.
    pub fn open_totp(&self, stored: &str) -> Option<String> {
        use chacha20poly1305::aead::Aead;
        let raw = URL_SAFE_NO_PAD.decode(stored.strip_prefix("v1:")?).ok()?;
        if raw.len() < 24 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(24);
        let plain = self
            .totp_cipher()
            .decrypt(chacha20poly1305::XNonce::from_slice(nonce), sealed)
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// The OIDC key id: the first 16 bytes of the public key's SHA-256, base64url.
    pub fn oidc_kid(&self) -> String {
        let digest = Sha256::digest(self.oidc.verifying_key().as_bytes());
        URL_SAFE_NO_PAD.encode(&digest[..16])
    }
}

/// HMAC-SHA-256 takes a key of any length, so constructing it cannot fail.
fn unreachable_hmac() -> Hmac<Sha256> {
    #[allow(clippy::expect_used)]
    <Hmac<Sha256> as Mac>::new_from_slice(&[0u8; 32]).expect("HMAC accepts any key length")
}

// --------------------------------------------------------------- tokens

/// A fresh random secret: 32 bytes, base64url, with a prefix naming its use
/// (so a leaked one is recognisable by secret scanners).
pub fn random_secret(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

/// How secrets are kept: the hex SHA-256 of the secret. The secrets are 256
/// random bits, so a fast hash is enough (no dictionary to attack).
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

// ------------------------------------------------------------- passwords

/// argon2id with OWASP's recommended minimum (m = 19 MiB, t = 2, p = 1):
/// about 25–40 ms on one core of this class of machine, 19 MiB each. At most
/// [`HASHING_AT_ONCE`] run at once, on blocking threads, so a flood of logins
/// costs at most that many cores and that much memory; beyond
/// [`HASHING_QUEUE`] waiting, logins are refused with 503 rather than queued
/// without bound.
pub const ARGON2_M_KIB: u32 = 19 * 1024;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;
pub const HASHING_AT_ONCE: usize = 1;
pub const HASHING_QUEUE: usize = 256;

fn argon2() -> Argon2<'static> {
    #[allow(clippy::expect_used)]
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
        .expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashing is refused because too many are already waiting.
#[derive(Debug)]
pub struct Busy;

pub struct PasswordWork {
    permits: Semaphore,
    waiting: AtomicUsize,
    /// A hash of a random password: verified against when the username is
    /// unknown, so that answer takes as long as a wrong password.
    dummy: String,
}

impl Default for PasswordWork {
    fn default() -> Self {
        PasswordWork {
            permits: Semaphore::new(HASHING_AT_ONCE),
            waiting: AtomicUsize::new(0),
            dummy: hash_password_now(&random_secret("")).unwrap_or_default(),
        }
    }
}

/// Hashes on the calling thread (callers in async code use [`PasswordWork`]).
pub fn hash_password_now(password: &str) -> Option<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

/// Verifies on the calling thread (callers in async code use [`PasswordWork`]).
pub fn verify_password_now(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

impl PasswordWork {
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= HASHING_QUEUE {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy);
        }
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _permit = permit.map_err(|_| Busy)?;
        tokio::task::spawn_blocking(f).await.map_err(|_| Busy)
    }

    pub async fn hash(&self, password: &str) -> Result<String, Busy> {
        let password = password.to_owned();
        self.run(move || hash_password_now(&password))
            .await?
            .ok_or(Busy)
    }

    /// Verifies `password` against `hash`, or against a dummy hash when there
    /// is no account (same cost, always false).
    pub async fn verify(&self, hash: Option<&str>, password: &str) -> Result<bool, Busy> {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.dummy).to_owned();
        let password = password.to_owned();
        let ok = self
            .run(move || verify_password_now(&hash, &password))
            .await?;
        Ok(ok && known)
    }
}

// ------------------------------------------------------------ throttling

/// Failed sign-ins per key, with a back-off that doubles from 30 s after
/// the free attempts, up to 15 minutes; counts fade after a quiet hour. The
/// counts live in the database (`sign_in_failures`), so every node sees the
/// same lock and a restart forgets nothing. Keys: `account:NAME` (clients the
/// account has not signed in from), `device:NONCE` (a device cookie),
/// `address:IP`, `second_factor:NAME`.
pub struct Throttle {
    free: u32,
}

pub const ACCOUNT_FREE_FAILURES: u32 = 5;
pub const ADDRESS_FREE_FAILURES: u32 = 20;
const FIRST_LOCK: Duration = Duration::from_secs(30);
const LONGEST_LOCK: Duration = Duration::from_secs(15 * 60);
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The lock the `failures`-th failure earns, past `free` free ones.
pub fn lock_after(failures: u32, free: u32) -> Option<Duration> {
    (failures > free).then(|| {
        let doublings = (failures - free - 1).min(10);
        (FIRST_LOCK * 2u32.pow(doublings)).min(LONGEST_LOCK)
    })
}

impl Throttle {
    pub fn new(free: u32) -> Throttle {
        Throttle { free }
    }

    /// How long `key` must still wait, if it is locked out. A database
    /// error is logged and lets the attempt through to the password check
    /// (which is slow by design) rather than lock everyone out.
    pub async fn wait(&self, store: &Store, key: &str) -> Option<Duration> {
        let now = nara_core::Timestamp::now().0;
        match store.sign_in_lock(key, now).await {
            Ok(until) => until.map(|u| Duration::from_millis((u - now).max(0) as u64)),
            Err(e) => {
                tracing::error!(error = %e, "reading sign-in failures");
                None
            }
        }
    }

    /// Counts a failure; returns the new lock-out if this failure caused one.
    pub async fn fail(&self, store: &Store, key: &str) -> Option<Duration> {
        let now = nara_core::Timestamp::now().0;
        let free = self.free;
        let forget = now - FORGET_AFTER.as_millis() as i64;
        let lock = |n: i64| {
            lock_after(u32::try_from(n).unwrap_or(u32::MAX), free).map(|d| d.as_millis() as i64)
        };
        match store.sign_in_failed(key, now, forget, lock).await {
            Ok(lock) => lock.map(|ms| Duration::from_millis(ms as u64)),
            Err(e) => {
                tracing::error!(error = %e, "recording a sign-in failure");
                None
            }
        }
    }

    pub async fn succeed(&self, store: &Store, key: &str) {
        if let Err(e) = store.sign_in_succeeded(key).await {
            tracing::error!(error = %e, "clearing sign-in failures");
        }
    }
}

// --------------------------------------------------------------- TOTP

/// RFC 6238 with the parameters every authenticator app understands: SHA-1,
/// 6 digits, 30 s steps, one step of clock skew either way.
pub fn totp(secret: &[u8], username: &str) -> Option<totp_rs::TOTP> {
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret.to_vec(),
        Some("nara".into()),
        username.to_owned(),
    )
    .ok()
}

pub fn new_totp_secret() -> String {
    totp_rs::Secret::Raw(rand::random::<[u8; 20]>().to_vec())
        .to_encoded()
        .to_string()
}

/// The time step a code matches (within ±1 step of now), if any.
pub fn totp_step(secret_b32: &str, username: &str, code: &str, now: u64) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secret = totp_rs::Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .ok()?;
    let t = totp(&secret, username)?;
    let step = (now / 30) as i64;
    [step - 1, step, step + 1]
        .into_iter()
        .find(|s| constant_time_eq(&t.generate((*s as u64) * 30), &code))
}

/// Ten single-use recovery codes, `xxxx-xxxx-xxxx` from an unambiguous alphabet.
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..10)
        .map(|_| {
            let raw: Vec<u8> = (0..12)
                .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())])
                .collect();
            let s = String::from_utf8_lossy(&raw).into_owned();
            format!("{}-{}-{}", &s[..4], &s[4..8], &s[8..])
        })
        .collect()
}

pub fn normalize_recovery_code(code: &str) -> String {
    code.trim().to_lowercase().replace([' ', '-'], "")
}

// ------------------------------------------------------------ principals

/// Sessions end after 30 idle minutes or 12 hours, whichever comes first.
pub const SESSION_IDLE_MS: i64 = 30 * 60 * 1000;
pub const SESSION_ABSOLUTE_MS: i64 = 12 * 3600 * 1000;
/// `last_seen_at` is written at most this often, so reads stay reads.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// How a principal proved itself.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A signed-in person; `csrf` is the session's anti-forgery token.
    Session {
        id_hash: String,
        csrf: String,
        amr: String,
        created_at: i64,
        expires_at: i64,
    },
    /// An operator API token with its scopes.
    Token {
        id: i64,
        scopes: Vec<String>,
        expires_at: i64,
    },
}

/// An authenticated account with the roles it holds.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account_id: i64,
    pub username: String,
    pub display_name: String,
    pub kind: AccountKind,
    pub agency: Option<nara_core::MemberId>,
    pub grants: Vec<Grant>,
    pub credential: Credential,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.grants.iter().any(|g| g.role == role)
    }

    /// Whether it holds `role` for `agency` (or platform-wide, for unscoped roles).
    pub fn has_role_for(&self, role: Role, agency: &nara_core::MemberId) -> bool {
        self.grants
            .iter()
            .any(|g| g.role == role && g.agency.as_ref().is_none_or(|a| a == agency))
    }

    /// The agencies it holds `role` for.
    pub fn agencies_for(&self, role: Role) -> Vec<nara_core::MemberId> {
        self.grants
            .iter()
            .filter(|g| g.role == role)
            .filter_map(|g| g.agency.clone())
            .collect()
    }

    /// The name recorded as the actor of its changes in the ledger.
    pub fn actor(&self) -> String {
        format!("account:{}", self.account_id)
    }

    pub fn csrf(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { csrf, .. } => Some(csrf),
            Credential::Token { .. } => None,
        }
    }

    pub fn session_hash(&self) -> Option<&str> {
        match &self.credential {
            Credential::Session { id_hash, .. } => Some(id_hash),
            Credential::Token { .. } => None,
        }
    }
}

/// What the policy point found on a request: a full principal, a session
/// part-way through sign-in, or nobody.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    /// Password proven; a second factor still to give (`stage`).
    Pending {
        session: SessionRecord,
        account: Box<Account>,
    },
    Signed(Box<Principal>),
    /// An agency system, by its signed request (RFC 9421).
    Machine(Box<crate::identity::machine::MachineCaller>),
}

impl Caller {
    /// The signed-in person or token holder, if any.
    pub fn person(&self) -> Option<&Principal> {
        match self {
            Caller::Signed(p) => Some(p),
            _ => None,
        }
    }
}

pub fn session_cookie_name(https: bool) -> &'static str {
    // `__Host-` binds the cookie to this exact origin over TLS (no Domain, Path=/).
    if https {
        "__Host-nara_session"
    } else {
        "nara_session"
    }
}

pub fn session_cookie(https: bool, value: &str, max_age_s: i64) -> String {
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{}",
        session_cookie_name(https),
        if https { "; Secure" } else { "" }
    )
}

/// The device cookie: set on a browser once it has signed in as an account,
/// so that a lock-out of that account (which strangers can cause) does not
/// hold its owner's browser, which is throttled on its own key instead.
pub const DEVICE_COOKIE: &str = "nara_device";
const DEVICE_COOKIE_DAYS: i64 = 365;

/// A device cookie for `username`: `USERNAME:NONCE:TAG`.
pub fn device_cookie(https: bool, keys: &IdentityKeys, username: &str) -> String {
    let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    let tag = keys.device_tag(username, &nonce);
    format!(
        "{DEVICE_COOKIE}={username}:{nonce}:{tag}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        DEVICE_COOKIE_DAYS * 86_400,
        if https { "; Secure" } else { "" }
    )
}

/// The device cookie's nonce, if the request carries a valid one for `username`.
pub fn trusted_device(
    headers: &axum::http::HeaderMap,
    keys: &IdentityKeys,
    username: &str,
) -> Option<String> {
    let value = cookie(headers, DEVICE_COOKIE)?;
    let mut parts = value.splitn(3, ':');
    let (name, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
    let expected = keys.device_tag(name, nonce);
    (name == username && bool::from(expected.as_bytes().ct_eq(tag.as_bytes())))
        .then(|| nonce.to_owned())
}

/// Reads one cookie from a request's `Cookie` headers.
pub fn cookie<'a>(parts: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    parts
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Callers recently identified, by the digest of their session id or token,
/// so that a signed-in page costs no database round trip. An entry is used
/// only while the store's identity epoch is the one it was filled at (any
/// sign-out, role change, second-factor change or token revocation — on this
/// node at once, on others within the 1 s poll — empties it in effect), for
/// at most [`CACHE_FOR`], and never past its session's absolute expiry.
#[derive(Default)]
pub struct CallerCache {
    entries: std::sync::RwLock<HashMap<String, Cached>>,
}

struct Cached {
    caller: Caller,
    epoch: u64,
    at: Instant,
}

pub const CACHE_FOR: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 100_000;

impl CallerCache {
    fn get(&self, key: &str, epoch: u64) -> Option<Caller> {
        let map = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let c = map.get(key)?;
        let now = nara_core::Timestamp::now().0;
        let alive = match &c.caller {
            Caller::Pending { session, .. } => now < session.expires_at,
            Caller::Signed(p) => match &p.credential {
                Credential::Session { expires_at, .. } => now < *expires_at,
                Credential::Token { expires_at, .. } => now < *expires_at,
            },
            Caller::Anonymous | Caller::Machine(_) => false,
        };
        (c.epoch == epoch && c.at.elapsed() < CACHE_FOR && alive).then(|| c.caller.clone())
    }

    fn put(&self, key: String, caller: &Caller, epoch: u64) {
        if matches!(caller, Caller::Anonymous | Caller::Machine(_)) {
            return;
        }
        let mut map = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= CACHE_MAX {
            map.clear();
        }
        map.insert(
            key,
            Cached {
                caller: caller.clone(),
                epoch,
                at: Instant::now(),
            },
        );
    }
}

/// Finds who is calling: an API token in `Authorization`, else a session cookie.
pub async fn identify(
    store: &Store,
    cache: &CallerCache,
    headers: &axum::http::HeaderMap,
    https: bool,
) -> Result<Caller, Problem> {
    // The epoch is read before the database, so a change racing this lookup
    // leaves an entry that is already stale.
    let epoch = store.identity_epoch();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| Problem::unauthorized().detail("use Authorization: Bearer <token>"))?;
        let key = format!("t:{}", digest(token));
        if let Some(c) = cache.get(&key, epoch) {
            return Ok(c);
        }
        let caller = api_token_principal(store, token).await?;
        cache.put(key, &caller, epoch);
        return Ok(caller);
    }
    let Some(id) = cookie(headers, session_cookie_name(https)) else {
        return Ok(Caller::Anonymous);
    };
    if id.len() > 100 {
        return Ok(Caller::Anonymous);
    }
    let key = format!("s:{}", digest(id));
    if let Some(c) = cache.get(&key, epoch) {
        return Ok(c);
    }
    let caller = session_caller(store, id).await?;
    cache.put(key, &caller, epoch);
    Ok(caller)
}

async fn api_token_principal(store: &Store, token: &str) -> Result<Caller, Problem> {
    let refused = || Problem::unauthorized().detail("the token is not valid, expired or revoked");
    if !token.starts_with("nara_at_") || token.len() > 100 {
        return Err(refused());
    }
    let record = store
        .api_token(&digest(token))
        .await
        .map_err(Problem::from)?
        .ok_or_else(refused)?;
    let now = nara_core::Timestamp::now().0;
    if record.revoked_at.is_some() || record.expires_at <= now {
        return Err(refused());
    }
    let account = store
        .account(record.account_id)
        .await
        .map_err(Problem::from)?
        .filter(Account::is_active)
        .ok_or_else(refused)?;
    signed(
        store,
        account,
        Credential::Token {
            id: record.id,
            scopes: record.scopes.split(' ').map(str::to_owned).collect(),
            expires_at: record.expires_at,
        },
    )
    .await
}

async fn session_caller(store: &Store, id: &str) -> Result<Caller, Problem> {
    if id.len() > 100 {
        return Ok(Caller::Anonymous);
    }
    let id_hash = digest(id);
    let Some(session) = store.session(&id_hash).await.map_err(Problem::from)? else {
        return Ok(Caller::Anonymous);
    };
    let now = nara_core::Timestamp::now().0;
    if now >= session.expires_at || now - session.last_seen_at >= SESSION_IDLE_MS {
        store
            .delete_session(&id_hash)
            .await
            .map_err(Problem::from)?;
        return Ok(Caller::Anonymous);
    }
    let Some(account) = store
        .account(session.account_id)
        .await
        .map_err(Problem::from)?
        .filter(Account::is_active)
    else {
        return Ok(Caller::Anonymous);
    };
    if now - session.last_seen_at >= TOUCH_EVERY_MS {
        store
            .touch_session(&id_hash, now)
            .await
            .map_err(Problem::from)?;
    }
    if session.stage != "full" {
        return Ok(Caller::Pending {
            session,
            account: Box::new(account),
        });
    }
    signed(
        store,
        account,
        Credential::Session {
            id_hash,
            csrf: session.csrf,
            amr: session.amr,
            created_at: session.created_at,
            expires_at: session.expires_at,
        },
    )
    .await
}

/// The principal of an active account with its current role grants.
async fn signed(
    store: &Store,
    account: Account,
    credential: Credential,
) -> Result<Caller, Problem> {
    let grants = store.grants(account.id).await.map_err(Problem::from)?;
    Ok(Caller::Signed(Box::new(Principal {
        account_id: account.id,
        username: account.username,
        display_name: account.display_name,
        kind: account.kind,
        agency: account.agency,
        grants,
        credential,
    })))
}

/// Starts a session for `account` (a new id every time: no session id is
/// ever accepted from outside, so fixation has nothing to fix). Returns the
/// cookie value.
pub async fn start_session(
    store: &Store,
    account_id: i64,
    stage: &str,
    amr: &str,
    address: &str,
    user_agent: &str,
) -> Result<String, Problem> {
    let id = random_secret("");
    let now = nara_core::Timestamp::now().0;
    store
        .create_session(&SessionRecord {
            id_hash: digest(&id),
            account_id,
            csrf: random_secret(""),
            stage: stage.into(),
            amr: amr.into(),
            address: address.chars().take(64).collect(),
            user_agent: user_agent.chars().take(200).collect(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + SESSION_ABSOLUTE_MS,
        })
        .await
        .map_err(Problem::from)?;
    Ok(id)
}

/// Issues an operator API token; the token is shown once and kept as a digest.
pub async fn issue_api_token(
    store: &Store,
    account_id: i64,
    name: &str,
    scopes: &[&str],
    valid_for: Duration,
) -> Result<String, nara_store::StoreError> {
    let token = random_secret("nara_at_");
    let expires = nara_core::Timestamp::now().0 + valid_for.as_millis() as i64;
    store
        .create_api_token(
            account_id,
            name,
            &digest(&token),
            &scopes.join(" "),
            expires,
        )
        .await?;
    Ok(token)
}

/// API token scopes: what a token may do beyond what its account's roles allow.
pub const SCOPES: &[&str] = &[
    "catalogue:write",
    "systems:read",
    "identity:read",
    "metrics:read",
];

/// The caller a request was decided for (set by the policy point, `policy::enforce`).
pub fn caller_of(extensions: &axum::http::Extensions) -> Caller {
    extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Anonymous)
}

/// The page a half-signed-in person must finish on.
pub fn pending_page(stage: &str) -> &'static str {
    match stage {
        "enrol" => "/sign-in/set-up-second-factor",
        _ => "/sign-in/second-factor",
    }
}

/// The principal of a request that passed the policy point.
impl FromRequestParts<crate::AppState> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &crate::AppState,
    ) -> Result<Self, Problem> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(Problem::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_codes_match_within_one_step_and_are_exact() {
        let secret = new_totp_secret();
        let bytes = totp_rs::Secret::Encoded(secret.clone()).to_bytes().unwrap();
        let t = totp(&bytes, "minji").unwrap();
        let now = 1_800_000_000u64;
        let code = t.generate(now);
        assert_eq!(
            totp_step(&secret, "minji", &code, now),
            Some((now / 30) as i64)
        );
        assert!(totp_step(&secret, "minji", &code, now + 30).is_some());
        assert!(totp_step(&secret, "minji", &code, now + 95).is_none());
        assert!(totp_step(&secret, "minji", "12345", now).is_none());
        assert!(totp_step(&secret, "minji", "abcdef", now).is_none());
    }

    #[test]
    fn rfc6238_vector() {
        // RFC 6238 Appendix B, SHA-1, T = 59 s: 94287082 (8 digits); 6 digits: 287082.
        let t = totp(b"12345678901234567890", "x").unwrap();
        assert_eq!(t.generate(59), "287082");
        assert_eq!(t.generate(1_111_111_109), "081804");
    }

    #[test]
    fn throttle_backs_off_and_doubles() {
        assert_eq!(lock_after(1, 2), None);
        assert_eq!(lock_after(2, 2), None);
        assert_eq!(lock_after(3, 2), Some(Duration::from_secs(30)));
        assert_eq!(lock_after(4, 2), Some(Duration::from_secs(60)));
        assert_eq!(lock_after(40, 2), Some(Duration::from_secs(15 * 60)));
        assert_eq!(lock_after(u32::MAX, 2), Some(Duration::from_secs(15 * 60)));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password_now("tangerine-lantern-river").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password_now(&h, "tangerine-lantern-river"));
        assert!(!verify_password_now(&h, "tangerine-lantern-rivet"));
        assert!(!verify_password_now("not a hash", "x"));
    }

    #[test]
    fn national_id_hashes_are_keyed() {
        let a = IdentityKeys::ephemeral();
        let b = IdentityKeys::ephemeral();
        assert_eq!(
            a.national_id_hash("9001011234567"),
            a.national_id_hash("9001011234567")
        );
        assert_ne!(
            a.national_id_hash("9001011234567"),
            b.national_id_hash("9001011234567")
        );
    }

    #[test]
    fn totp_secrets_are_sealed() {
        let a = IdentityKeys::ephemeral();
        let secret = new_totp_secret();
        let sealed = a.seal_totp(&secret).unwrap();
        assert!(!sealed.contains(&secret));
        assert_eq!(a.open_totp(&sealed).as_deref(), Some(secret.as_str()));
        assert_ne!(
            a.seal_totp(&secret).unwrap(),
            sealed,
            "a fresh nonce each time"
        );
        assert_eq!(
            IdentityKeys::ephemeral().open_totp(&sealed),
            None,
            "another key cannot open it"
        );
        assert_eq!(
            a.open_totp(&secret),
            None,
            "plain text is not a sealed secret"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        assert_eq!(a.open_totp(&tampered), None);
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalise() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        let set: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(set.len(), 10);
        assert_eq!(normalize_recovery_code(" ABCD-efgh-2345 "), "abcdefgh2345");
    }
}
