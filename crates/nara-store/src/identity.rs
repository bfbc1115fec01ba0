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

/// Claims one signature's replay key as seen at `$now` in the caller's
/// transaction: true if it was new (or last seen at or before `$since`, past
/// the replay window), false if it was used since, by any node.
macro_rules! claim_in_tx {
    ($tx:ident, $key:expr, $now:expr, $since:expr) => {{
        // Inserted, or an old row taken over: either way one row changed.
        let changed = sqlx::query(
            "INSERT INTO seen_signatures (replay_key, seen_at) VALUES ($1, $2) \
             ON CONFLICT (replay_key) DO UPDATE SET seen_at = excluded.seen_at \
             WHERE seen_signatures.seen_at <= $3",
        )
        .bind($key)
        .bind($now)
        .bind($since)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        changed == 1
    }};
}

/// Claims every key of `$keys` (a slice of `String`) as [`claim_in_tx`]
/// does, in multi-row statements (each statement is a round trip to the
/// database): true if every one was new, false if any was used since (or
/// appears twice, which PostgreSQL could not update in one statement).
macro_rules! claim_all_in_tx {
    ($tx:ident, $keys:expr, $now:expr, $since:expr) => {{
        let keys: &[String] = $keys;
        let mut distinct = std::collections::HashSet::new();
        let mut all_new = keys.iter().all(|k| distinct.insert(k.as_str()));
        for chunk in crate::sql::chunks(if all_new { keys } else { &[] }) {
            let mut sql =
                crate::sql::Sql::new("INSERT INTO seen_signatures (replay_key, seen_at) VALUES ");
            for (i, key) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(crate::sql::Arg::Text(key.clone())).push(", ");
                sql.bind(crate::sql::Arg::Int($now)).push(")");
            }
            // A row seen within the window is left alone: fewer rows changed
            // than keys claimed means one was a replay.
            sql.push(
                " ON CONFLICT (replay_key) DO UPDATE SET seen_at = excluded.seen_at \
                 WHERE seen_signatures.seen_at <= ",
            );
            sql.bind(crate::sql::Arg::Int($since));
            let changed = crate::sql::bind_args!(crate::sql::query(&sql), sql)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
            if changed != chunk.len() as u64 {
                all_new = false;
                break;
            }
        }
        all_new
    }};
}
pub(crate) use claim_all_in_tx;

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
        let rows: Vec<(String, String)> = with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT role, agency_id FROM role_grants WHERE account_id = $1 ORDER BY role, agency_id"
        )
        .bind(account_id)
        .fetch_all(pool)
        .await?
        });
        rows.into_iter()
            .map(|(role, agency)| {
                Ok(Grant {
                    role: parse_column(&role, "role_grants.role")?,
                    agency: if agency.is_empty() {
                        None
                    } else {
                        Some(parse_column(&agency, "role_grants.agency_id")?)
                    },
                })
            })
            .collect()
    }

    /// Grants a role; a ledger entry. Granting a role already held is a conflict.
    pub async fn grant_role(&self, account_id: i64, grant: &Grant, actor: &str) -> Result<()> {
        let now = Timestamp::now();
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            insert_grant!(tx, account_id, grant, actor, now);
            sqlx::query(BUMP_IDENTITY).execute(&mut *tx).await?;
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "identity.role.granted",
                    actor,
                    account_subjects(account_id, grant.agency.as_ref()),
                    &(account_id, grant)
                )?
            );
            self.identity_changed();
        });
        Ok(())
    }

    /// Revokes a role; a ledger entry. Revoking a role not held is not found.
    pub async fn revoke_role(&self, account_id: i64, grant: &Grant, actor: &str) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let done = sqlx::query(
                "DELETE FROM role_grants WHERE account_id = $1 AND role = $2 AND agency_id = $3",
            )
            .bind(account_id)
            .bind(grant.role.as_str())
            .bind(grant.agency.as_ref().map(MemberId::as_str).unwrap_or(""))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound(format!(
                    "role {} of account {account_id}",
                    grant.role
                )));
            }
            sqlx::query(BUMP_IDENTITY).execute(&mut *tx).await?;
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "identity.role.revoked",
                    actor,
                    account_subjects(account_id, grant.agency.as_ref()),
                    &(account_id, grant)
                )?
            );
            self.identity_changed();
        });
        Ok(())
    }

    pub async fn set_password(&self, account_id: i64, password_hash: &str) -> Result<()> {
        self.update_account(
            "UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE id = $1",
            account_id,
            Some(password_hash),
        )
        .await
    }

    /// Sets up (or, with `None`, removes) the TOTP second factor, replacing
    /// the recovery codes with `recovery_hashes`.
    pub async fn set_second_factor(
        &self,
        account_id: i64,
        totp_secret: Option<&str>,
        recovery_hashes: &[String],
    ) -> Result<()> {
        let now = Timestamp::now().0;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query(
                "UPDATE accounts SET totp_secret = $2, totp_last_step = NULL, updated_at = $3 WHERE id = $1",
            )
            .bind(account_id)
            .bind(totp_secret)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            for h in recovery_hashes {
                sqlx::query("INSERT INTO recovery_codes (account_id, code_hash) VALUES ($1, $2)")
                    .bind(account_id)
                    .bind(h)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(BUMP_IDENTITY).execute(&mut *tx).await?;
            tx.commit().await?;
            self.identity_changed();
        });
        Ok(())
    }

    /// Records that the TOTP time step `step` was used, refusing it (false)
    /// if it or a later one was used before: a code works once (RFC 6238 §5.2).
    pub async fn use_totp_step(&self, account_id: i64, step: i64) -> Result<bool> {
        let done = with_pool!(self, |pool| sqlx::query(
            "UPDATE accounts SET totp_last_step = $2 WHERE id = $1 \
             AND (totp_last_step IS NULL OR totp_last_step < $2)"
        )
        .bind(account_id)
        .bind(step)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Spends a recovery code; false if it is unknown or already spent.
    pub async fn use_recovery_code(&self, account_id: i64, code_hash: &str) -> Result<bool> {
        let done = with_pool!(self, |pool| {
            sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL"
        )
        .bind(account_id)
        .bind(code_hash)
        .bind(Timestamp::now().0)
        .execute(pool)
        .await?
        .rows_affected()
        });
        Ok(done == 1)
    }

    pub async fn recovery_codes_left(&self, account_id: i64) -> Result<i64> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL"
        )
        .bind(account_id)
        .fetch_one(pool)
        .await?))
    }

    async fn update_account(&self, sql: &str, account_id: i64, value: Option<&str>) -> Result<()> {
        let args = vec![
            Arg::Int(account_id),
            Arg::OptText(value.map(str::to_owned)),
            Arg::Int(Timestamp::now().0),
        ];
        if self.write_one(Sql::with_args(sql, args), true).await? == 0 {
            return Err(StoreError::NotFound(format!("account {account_id}")));
        }
        Ok(())
    }

    /// Runs one statement in a write transaction and returns the rows it
    /// changed. With `ends_access`, the change may end or narrow a session or
    /// token: `identity_version` is bumped in the same transaction and the
    /// local epoch after the commit, so cached callers go stale.
    async fn write_one(&self, sql: Sql, ends_access: bool) -> Result<u64> {
        let n = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = bind_args!(crate::sql::query(&sql), sql)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if ends_access {
                sqlx::query(BUMP_IDENTITY).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            n
        });
        if ends_access {
            self.identity_changed();
        }
        Ok(n)
    }

    // ------------------------------------------------------------- sessions

    pub async fn create_session(&self, s: &SessionRecord) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query(
                "INSERT INTO sessions (id_hash, account_id, csrf, stage, amr, address, user_agent, \
                 created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&s.id_hash)
            .bind(s.account_id)
            .bind(&s.csrf)
            .bind(&s.stage)
            .bind(&s.amr)
            .bind(&s.address)
            .bind(&s.user_agent)
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .bind(s.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id_hash, account_id, csrf, stage, amr, address, user_agent, created_at, \
             last_seen_at, expires_at FROM sessions WHERE id_hash = $1"
        )
        .bind(id_hash)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn sessions_of(&self, account_id: i64) -> Result<Vec<SessionRecord>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id_hash, account_id, csrf, stage, amr, address, user_agent, created_at, \
             last_seen_at, expires_at FROM sessions WHERE account_id = $1 ORDER BY last_seen_at DESC"
        )
        .bind(account_id)
        .fetch_all(pool)
        .await?
        }))
    }

    /// Marks a session as seen now (callers do this at most once a minute).
    pub async fn touch_session(&self, id_hash: &str, now: i64) -> Result<()> {
        let sql = "UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1";
        self.write_one(
            Sql::with_args(sql, vec![text(id_hash), Arg::Int(now)]),
            false,
        )
        .await
        .map(drop)
    }

    /// Moves a session to a new stage with the methods now proven.
    pub async fn advance_session(&self, id_hash: &str, stage: &str, amr: &str) -> Result<()> {
        let sql = "UPDATE sessions SET stage = $2, amr = $3 WHERE id_hash = $1";
        self.write_one(
            Sql::with_args(sql, vec![text(id_hash), text(stage), text(amr)]),
            true,
        )
        .await
        .map(drop)
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let sql = "DELETE FROM sessions WHERE id_hash = $1";
        self.write_one(Sql::with_args(sql, vec![text(id_hash)]), true)
            .await
            .map(drop)
    }

    /// Ends every session of an account ("sign out everywhere") and, with
    /// them, what those sessions gave apps: every OpenID Connect access and
    /// refresh token is revoked and every unredeemed authorization code used
    /// up, in one transaction. Returns how many sessions ended.
    pub async fn delete_sessions_of(&self, account_id: i64) -> Result<u64> {
        let now = Timestamp::now().0;
        let n = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query("DELETE FROM sessions WHERE account_id = $1")
                .bind(account_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(
                "UPDATE oidc_tokens SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL",
            )
            .bind(account_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE oidc_codes SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL",
            )
            .bind(account_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(BUMP_IDENTITY).execute(&mut *tx).await?;
            tx.commit().await?;
            n
        });
        self.identity_changed();
        Ok(n)
    }

    /// Removes sessions past their absolute expiry.
    /// Removes what has expired: sessions past their absolute expiry,
    /// abandoned WebAuthn ceremonies, and authorization codes (used or not)
    /// past their lifetime. Returns how many sessions went.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        let sessions = self
            .write_one(
                Sql::with_args(
                    "DELETE FROM sessions WHERE expires_at <= $1",
                    vec![Arg::Int(now)],
                ),
                false,
            )
            .await?;
        self.write_one(
            Sql::with_args(
                "DELETE FROM webauthn_ceremonies WHERE expires_at <= $1",
                vec![Arg::Int(now)],
            ),
            false,
        )
        .await?;
        // Failed sign-ins fade after a quiet hour (auth::FORGET_AFTER).
        self.purge_sign_in_failures(now - 3_600_000).await?;
        self.write_one(
            Sql::with_args(
                "DELETE FROM oidc_codes WHERE expires_at <= $1",
                vec![Arg::Int(now)],
            ),
            false,
        )
        .await?;
        Ok(sessions)
    }

    // ------------------------------------------------------ security events

    pub async fn record_security_event(
        &self,
        kind: &str,
        account_id: Option<i64>,
        username: &str,
        address: &str,
        detail: &str,
    ) -> Result<()> {
        let sql = "INSERT INTO security_events (at, kind, account_id, username, address, detail) \
                   VALUES ($1, $2, $3, $4, $5, $6)";
        let account = Arg::OptInt(account_id);
        let args = vec![
            Arg::Int(Timestamp::now().0),
            text(kind),
            account,
            text(username),
            text(address),
            text(detail),
        ];
        self.write_one(Sql::with_args(sql, args), false)
            .await
            .map(drop)
    }

    /// The newest security events first, optionally of one kind.
    pub async fn security_events(
        &self,
        kind: Option<&str>,
        limit: i64,
    ) -> Result<Vec<SecurityEvent>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, at, kind, account_id, username, address, detail FROM security_events \
             WHERE ($1 IS NULL OR kind = $1) ORDER BY id DESC LIMIT $2"
        )
        .bind(kind)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    // ----------------------------------------------------------- API tokens

    pub async fn create_api_token(
        &self,
        account_id: i64,
        name: &str,
        token_hash: &str,
        scopes: &str,
        expires_at: i64,
    ) -> Result<i64> {
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO api_tokens (account_id, name, token_hash, scopes, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(account_id)
            .bind(name)
            .bind(token_hash)
            .bind(scopes)
            .bind(Timestamp::now().0)
            .bind(expires_at)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            id
        }))
    }

    pub async fn api_token(&self, token_hash: &str) -> Result<Option<ApiTokenRecord>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, account_id, name, scopes, created_at, expires_at, revoked_at \
             FROM api_tokens WHERE token_hash = $1"
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn api_tokens_of(&self, account_id: i64) -> Result<Vec<ApiTokenRecord>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT id, account_id, name, scopes, created_at, expires_at, revoked_at \
             FROM api_tokens WHERE account_id = $1 ORDER BY id DESC"
        )
        .bind(account_id)
        .fetch_all(pool)
        .await?))
    }

    /// Revokes one of an account's tokens; false if it has no such token.
    pub async fn revoke_api_token(&self, account_id: i64, id: i64) -> Result<bool> {
        let sql = "UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL";
        let args = vec![
            Arg::Int(id),
            Arg::Int(account_id),
            Arg::Int(Timestamp::now().0),
        ];
        Ok(self.write_one(Sql::with_args(sql, args), true).await? == 1)
    }
}

fn account_subjects(id: i64, agency: Option<&MemberId>) -> Vec<String> {
    let mut s = vec![format!("account:{id}")];
    if let Some(a) = agency {
        s.push(format!("agency:{a}"));
    }
    s
}

fn account_conflict(e: sqlx::Error, new: &NewAccount) -> StoreError {
    match constraint_error(e, "account") {
        StoreError::Conflict(_) => StoreError::Conflict(
            if new.national_id_hash.is_some() {
                "this username or national identifier already has an account"
            } else {
                "this username is taken"
            }
            .into(),
        ),
        other => other,
    }
}

/// An agency system's signing key.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MachineClient {
    /// `INSTANCE/CLASS/CODE/SUBSYSTEM/N`: the subsystem and a key number.
    pub key_id: String,
    #[serde(rename = "agency")]
    pub agency_id: String,
    pub subsystem: String,
    /// The Ed25519 public key, base64url without padding.
    pub public_key: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// Registered at a national alert level that asks for a second
    /// approval, and not yet approved: it signs nothing.
    pub pending_since: Option<i64>,
}

const MACHINE_COLUMNS: &str =
    "key_id, agency_id, subsystem, public_key, created_at, revoked_at, pending_since";

impl Store {
    /// Registers a subsystem's key; a ledger entry.
    pub async fn register_machine_client(&self, c: &MachineClient, actor: &str) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query(
                "INSERT INTO machine_clients (key_id, agency_id, subsystem, public_key, created_by, created_at, pending_since) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&c.key_id)
            .bind(&c.agency_id)
            .bind(&c.subsystem)
            .bind(&c.public_key)
            .bind(actor)
            .bind(c.created_at)
            .bind(c.pending_since)
            .execute(&mut *tx)
            .await
            .map_err(|e| constraint_error(e, &format!("key {}", c.key_id)))?;
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "identity.machine_client.registered",
                    actor,
                    vec![
                        format!("machine_client:{}", c.key_id),
                        format!("agency:{}", c.agency_id)
                    ],
                    c
                )?
            );
        });
        Ok(())
    }

    pub async fn machine_client(&self, key_id: &str) -> Result<Option<MachineClient>> {
        let sql = format!("SELECT {MACHINE_COLUMNS} FROM machine_clients WHERE key_id = $1");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(key_id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn machine_clients_of(&self, agency: &MemberId) -> Result<Vec<MachineClient>> {
        let sql = format!(
            "SELECT {MACHINE_COLUMNS} FROM machine_clients WHERE agency_id = $1 ORDER BY subsystem, key_id"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(agency.as_str())
            .fetch_all(pool)
            .await?))
    }

    /// Live keys waiting for a second approval, oldest first, with who
    /// registered each.
    pub async fn pending_machine_clients(&self) -> Result<Vec<(MachineClient, String)>> {
        let sql = format!(
            "SELECT {MACHINE_COLUMNS}, created_by FROM machine_clients \
             WHERE pending_since IS NOT NULL AND revoked_at IS NULL ORDER BY pending_since, key_id"
        );
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
                fresh.push(claim_in_tx!(tx, key, now_ms, since_ms));
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
