//! Accounts, role grants, sessions, security events and API tokens.
//!
//! The store keeps no secret in the clear: callers hand it argon2id hashes,
//! keyed national-identifier hashes and SHA-256 digests of random tokens, and
//! look records up by those digests. Role grants and account creation are
//! ledger entries, written in the change's own transaction.

use nara_core::identity::{AccountKind, Grant};
use nara_core::{MemberId, Timestamp};
use serde::Serialize;

use crate::ledger::{commit_with_entry, entry_bytes};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Result, Store, StoreError, constraint_error, parse_column, with_pool, write_tx};

/// Inserts one role grant inside a transaction.
macro_rules! insert_grant {
    ($tx:ident, $account:expr, $grant:expr, $actor:expr, $now:expr) => {{
        let grant: &Grant = $grant;
        sqlx::query(
            "INSERT INTO role_grants (account_id, role, agency_id, granted_at, granted_by) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind($account)
        .bind(grant.role.as_str())
        .bind(grant.agency.as_ref().map(MemberId::as_str).unwrap_or(""))
        .bind($now.0)
        .bind($actor)
        .execute(&mut *$tx)
        .await
        .map_err(|e| constraint_error(e, &format!("role {}", grant.role)))?;
    }};
}

/// Counts changes that can end or narrow a session or token: this node's own
/// (at once) and other nodes' (seen when `identity_version` is polled). A
/// cache of callers is valid while the epoch it was filled at is current.
#[derive(Debug, Default)]
pub struct IdentityEpoch {
    local: std::sync::atomic::AtomicU64,
    seen_in_database: std::sync::atomic::AtomicI64,
}

fn text(s: &str) -> Arg {
    Arg::Text(s.to_owned())
}

const BUMP_IDENTITY: &str = "UPDATE identity_version SET version = version + 1 WHERE id = 1";

/// An account as the sign-in path needs it (hashes included; never serialised).
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub kind: AccountKind,
    pub username: String,
    pub display_name: String,
    pub agency: Option<MemberId>,
    pub password_hash: String,
    pub totp_secret: Option<String>,
    pub status: String,
    pub created_at: Timestamp,
}

impl Account {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: i64,
    kind: String,
    username: String,
    display_name: String,
    agency_id: Option<String>,
    password_hash: String,
    totp_secret: Option<String>,
    status: String,
    created_at: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self> {
        Ok(Account {
            id: r.id,
            kind: parse_column(&r.kind, "accounts.kind")?,
            username: r.username,
            display_name: r.display_name,
            agency: r
                .agency_id
                .map(|a| parse_column(&a, "accounts.agency_id"))
                .transpose()?,
            password_hash: r.password_hash,
            totp_secret: r.totp_secret,
            status: r.status,
            created_at: Timestamp(r.created_at),
        })
    }
}

const ACCOUNT_COLUMNS: &str =
    "id, kind, username, display_name, agency_id, password_hash, totp_secret, status, created_at";

/// A new account, its secrets already hashed by the caller.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub kind: AccountKind,
    pub username: String,
    pub display_name: String,
    pub national_id_hash: Option<String>,
    pub agency: Option<MemberId>,
    pub password_hash: String,
    pub totp_secret: Option<String>,
    pub grants: Vec<Grant>,
}

/// What the ledger records of an account: ids, kind, agency and roles, no
/// personal data (the ledger is public).
#[derive(Serialize)]
struct AccountState<'a> {
    id: i64,
    kind: AccountKind,
    agency: Option<&'a MemberId>,
    grants: &'a [Grant],
}

/// A server-side session as stored (looked up by the digest of its id).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRecord {
    pub id_hash: String,
    pub account_id: i64,
    pub csrf: String,
    /// `full`, or `second_factor` while the password is proven and the second
    /// factor not yet, or `enrol` while a second factor must be set up first.
    pub stage: String,
    /// Authentication methods used, space-separated (RFC 8176: `pwd`, `otp`).
    pub amr: String,
    pub address: String,
    pub user_agent: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// A security event for the security-operations work to read.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SecurityEvent {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub account_id: Option<i64>,
    pub username: String,
    pub address: String,
    pub detail: String,
}

/// An operator API token as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiTokenRecord {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl Store {
    /// The identity epoch: changes when a session, role or token may have
    /// been ended or narrowed, on this node or (after a poll) another.
    pub fn identity_epoch(&self) -> u64 {
        self.identity_epoch
            .local
            .load(std::sync::atomic::Ordering::Acquire)
    }

    fn identity_changed(&self) {
        self.identity_epoch
            .local
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Reads `identity_version`; a change made by another node moves the epoch.
    pub async fn poll_identity_version(&self) -> Result<()> {
        let v: i64 = with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT version FROM identity_version WHERE id = 1"
        )
        .fetch_one(pool)
        .await?);
        let before = self
            .identity_epoch
            .seen_in_database
            .swap(v, std::sync::atomic::Ordering::AcqRel);
        if before != v {
            self.identity_changed();
        }
        Ok(())
    }

    /// Creates an account with its role grants; one ledger entry.
    pub async fn create_account(&self, new: &NewAccount, actor: &str) -> Result<Account> {
        let now = Timestamp::now();
        let id = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO accounts (kind, username, display_name, national_id_hash, agency_id, \
                 password_hash, totp_secret, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8) RETURNING id",
            )
            .bind(new.kind.as_str())
            .bind(&new.username)
            .bind(&new.display_name)
            .bind(new.national_id_hash.as_deref())
            .bind(new.agency.as_ref().map(MemberId::as_str))
            .bind(&new.password_hash)
            .bind(new.totp_secret.as_deref())
            .bind(now.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| account_conflict(e, new))?;
            for g in &new.grants {
                insert_grant!(tx, id, g, actor, now);
            }
            let entry = entry_bytes(
                "identity.account.created",
                actor,
                account_subjects(id, new.agency.as_ref()),
                &AccountState {
                    id,
                    kind: new.kind,
                    agency: new.agency.as_ref(),
                    grants: &new.grants,
                },
            )?;
            commit_with_entry!(self, tx, entry);
            id
        });
        Ok(Account {
            id,
            kind: new.kind,
            username: new.username.clone(),
            display_name: new.display_name.clone(),
            agency: new.agency.clone(),
            password_hash: new.password_hash.clone(),
            totp_secret: new.totp_secret.clone(),
            status: "active".into(),
            created_at: now,
        })
    }

    /// The account a national identifier (its keyed hash) belongs to, if any.
    pub async fn account_id_by_national_hash(&self, hash: &str) -> Result<Option<i64>> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT id FROM accounts WHERE national_id_hash = $1"
        )
        .bind(hash)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn account_by_username(&self, username: &str) -> Result<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username = $1");
        let row: Option<AccountRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(username)
            .fetch_optional(pool)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    pub async fn account(&self, id: i64) -> Result<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
        let row: Option<AccountRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    /// The keyed hash of a citizen's national identifier (their pseudonym in
    /// consents and the message log).
    pub async fn national_id_hash_of(&self, account_id: i64) -> Result<Option<String>> {
        Ok(
            with_pool!(self, |pool| sqlx::query_scalar::<_, Option<String>>(
                "SELECT national_id_hash FROM accounts WHERE id = $1"
            )
            .bind(account_id)
            .fetch_optional(pool)
            .await?)
            .flatten(),
        )
    }

    /// Whether an account already holds this national identifier (by its keyed hash).
    pub async fn national_id_taken(&self, hash: &str) -> Result<bool> {
        let n: i64 = with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM accounts WHERE national_id_hash = $1"
        )
        .bind(hash)
        .fetch_one(pool)
        .await?);
        Ok(n > 0)
    }

    /// The accounts that belong to an agency or hold a role for it.
    pub async fn accounts_of_agency(&self, agency: &MemberId) -> Result<Vec<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE agency_id = $1 OR id IN \
             (SELECT account_id FROM role_grants WHERE agency_id = $1) ORDER BY username"
        );
        let rows: Vec<AccountRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(agency.as_str())
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn grants(&self, account_id: i64) -> Result<Vec<Grant>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            client: MachineClient,
            created_by: String,
        }
        let rows: Vec<Row> = with_pool!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
        Ok(rows.into_iter().map(|r| (r.client, r.created_by)).collect())
    }

    /// Approves a key waiting for a second approval; a ledger entry. The
    /// approver may not be who registered it, and a key not waiting
    /// (approved, revoked, unknown) is a conflict.
    pub async fn approve_machine_client(&self, key_id: &str, actor: &str) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let registrar: Option<String> = sqlx::query_scalar(
                "SELECT created_by FROM machine_clients \
                 WHERE key_id = $1 AND pending_since IS NOT NULL AND revoked_at IS NULL",
            )
            .bind(key_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(registrar) = registrar else {
                return Err(StoreError::Conflict(format!(
                    "key {key_id} is not waiting for approval"
                )));
            };
            if registrar == actor {
                return Err(StoreError::Conflict(
                    "a key's second approval must come from someone other than who registered it"
                        .into(),
                ));
            }
            sqlx::query(
                "UPDATE machine_clients SET pending_since = NULL, approved_by = $2 WHERE key_id = $1",
            )
            .bind(key_id)
            .bind(actor)
            .execute(&mut *tx)
            .await?;
            sqlx::query(BUMP_IDENTITY).execute(&mut *tx).await?;
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "identity.machine_client.approved",
                    actor,
                    vec![format!("machine_client:{key_id}")],
                    &(key_id, registrar)
                )?
            );
        });
        self.identity_changed();
        Ok(())
    }

    /// Revokes a key of the agency; a ledger entry. False if it has no such live key.
    pub async fn revoke_machine_client(
        &self,
        agency: &MemberId,
        key_id: &str,
        actor: &str,
    ) -> Result<bool> {
        let now = Timestamp::now().0;
        let done = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query(
                "UPDATE machine_clients SET revoked_at = $3 WHERE key_id = $1 AND agency_id = $2 AND revoked_at IS NULL",
            )
            .bind(key_id)
            .bind(agency.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            sqlx::query(BUMP_IDENTITY).execute(&mut *tx).await?;
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "identity.machine_client.revoked",
                    actor,
                    vec![
                        format!("machine_client:{key_id}"),
                        format!("agency:{agency}")
                    ],
                    &(key_id, now)
                )?
            );
            true
        });
        self.identity_changed();
        Ok(done)
    }
}

/// A registered passkey (webauthn-rs's serialised `Passkey`: public key and counter).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PasskeyRecord {
    pub credential_id: String,
    pub account_id: i64,
    pub name: String,
    pub passkey: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl Store {
    pub async fn add_passkey(&self, p: &PasskeyRecord) -> Result<()> {
        let sql = "INSERT INTO passkeys (credential_id, account_id, name, passkey, created_at) VALUES ($1, $2, $3, $4, $5)";
        let args = vec![
            text(&p.credential_id),
            Arg::Int(p.account_id),
            text(&p.name),
            text(&p.passkey),
            Arg::Int(p.created_at),
        ];
        self.write_one(Sql::with_args(sql, args), false)
            .await
            .map_err(|e| match e {
                StoreError::Database(db) => constraint_error(db, "passkey"),
                other => other,
            })
            .map(drop)
    }

    pub async fn passkeys_of(&self, account_id: i64) -> Result<Vec<PasskeyRecord>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT credential_id, account_id, name, passkey, created_at, last_used_at \
             FROM passkeys WHERE account_id = $1 ORDER BY created_at"
        )
        .bind(account_id)
        .fetch_all(pool)
        .await?))
    }

    /// Stores a passkey's new state (its signature counter) after a use.
    pub async fn passkey_used(&self, credential_id: &str, passkey: &str) -> Result<()> {
        let sql = "UPDATE passkeys SET passkey = $2, last_used_at = $3 WHERE credential_id = $1";
        let args = vec![
            text(credential_id),
            text(passkey),
            Arg::Int(Timestamp::now().0),
        ];
        self.write_one(Sql::with_args(sql, args), false)
            .await
            .map(drop)
    }

    /// Removes one of an account's passkeys; false if it has no such passkey.
    pub async fn remove_passkey(&self, account_id: i64, credential_id: &str) -> Result<bool> {
        let sql = "DELETE FROM passkeys WHERE account_id = $1 AND credential_id = $2";
        let args = vec![Arg::Int(account_id), text(credential_id)];
        Ok(self.write_one(Sql::with_args(sql, args), true).await? == 1)
    }

    /// Remembers a session's WebAuthn ceremony (replacing any earlier one).
    pub async fn put_ceremony(
        &self,
        session_hash: &str,
        kind: &str,
        state: &str,
        expires_at: i64,
    ) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query("DELETE FROM webauthn_ceremonies WHERE session_hash = $1")
                .bind(session_hash)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO webauthn_ceremonies (session_hash, kind, state, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(session_hash)
            .bind(kind)
            .bind(state)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Takes (and forgets) a session's ceremony of `kind`, if it has not expired:
    /// a challenge is answered once.
    pub async fn take_ceremony(
        &self,
        session_hash: &str,
        kind: &str,
        now: i64,
    ) -> Result<Option<String>> {
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let state: Option<String> = sqlx::query_scalar(
                "SELECT state FROM webauthn_ceremonies WHERE session_hash = $1 AND kind = $2 AND expires_at > $3",
            )
            .bind(session_hash)
            .bind(kind)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM webauthn_ceremonies WHERE session_hash = $1")
                .bind(session_hash)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            state
        }))
    }
}

impl Store {
    /// Records each of `keys` (one request's signature each) as seen at
    /// `now_ms`, in one transaction, answering for each whether it was new:
    /// false if it was seen after `since_ms`, by this node or another. A key
    /// repeated within the batch is new only the first time.
    pub async fn claim_signatures(
        &self,
        keys: &[String],
        now_ms: i64,
        since_ms: i64,
    ) -> Result<Vec<bool>> {
        let mut fresh = Vec::with_capacity(keys.len());
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            for key in keys {
                // Inserted, or an old row taken over: either way one row changed.
                let changed = sqlx::query(
                    "INSERT INTO seen_signatures (replay_key, seen_at) VALUES ($1, $2) \
                     ON CONFLICT (replay_key) DO UPDATE SET seen_at = excluded.seen_at \
                     WHERE seen_signatures.seen_at <= $3",
                )
                .bind(key)
                .bind(now_ms)
                .bind(since_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                fresh.push(changed == 1);
            }
            tx.commit().await?;
        });
        Ok(fresh)
    }

    /// Forgets signatures seen at or before `before_ms` (past the replay window).
    pub async fn prune_signatures(&self, before_ms: i64) -> Result<u64> {
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query("DELETE FROM seen_signatures WHERE seen_at <= $1")
                .bind(before_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            n
        }))
    }
}

impl Store {
    /// Until when `key` is locked out of signing in (ms), if it is.
    pub async fn sign_in_lock(&self, key: &str, now_ms: i64) -> Result<Option<i64>> {
        let until: Option<Option<i64>> = with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT locked_until FROM sign_in_failures WHERE key = $1"
        )
        .bind(key)
        .fetch_optional(pool)
        .await?);
        Ok(until.flatten().filter(|u| *u > now_ms))
    }

    /// Counts a failed sign-in for `key` (a count older than `forget_before`
    /// starts again) and, if `lock_for` says so for the new count, locks the
    /// key until then; in one transaction. Returns the lock's length (ms).
    pub async fn sign_in_failed(
        &self,
        key: &str,
        now_ms: i64,
        forget_before: i64,
        lock_for: impl Fn(i64) -> Option<i64>,
    ) -> Result<Option<i64>> {
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let failures: i64 = sqlx::query_scalar(
                "INSERT INTO sign_in_failures (key, failures, last_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (key) DO UPDATE SET \
                 failures = CASE WHEN sign_in_failures.last_at < $3 THEN 1 ELSE sign_in_failures.failures + 1 END, \
                 last_at = $2 RETURNING failures",
            )
            .bind(key)
            .bind(now_ms)
            .bind(forget_before)
            .fetch_one(&mut *tx)
            .await?;
            let lock = lock_for(failures);
            if let Some(ms) = lock {
                sqlx::query("UPDATE sign_in_failures SET locked_until = $2 WHERE key = $1")
                    .bind(key)
                    .bind(now_ms + ms)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            lock
        }))
    }

    /// Forgets `key`'s failures (it signed in).
    pub async fn sign_in_succeeded(&self, key: &str) -> Result<()> {
        let sql = "DELETE FROM sign_in_failures WHERE key = $1";
        self.write_one(Sql::with_args(sql, vec![text(key)]), false)
            .await
            .map(drop)
    }

    /// Forgets failures quiet since `before` and not locked beyond it.
    async fn purge_sign_in_failures(&self, before: i64) -> Result<u64> {
        let sql = "DELETE FROM sign_in_failures WHERE last_at < $1 \
                   AND (locked_until IS NULL OR locked_until < $1)";
        self.write_one(Sql::with_args(sql, vec![Arg::Int(before)]), false)
            .await
    }
}
