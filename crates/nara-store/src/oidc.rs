//! The OpenID Connect provider's records: registered agency apps (clients),
//! one-time authorization codes, access and refresh tokens (by digest, in
//! families so that reuse of a rotated refresh token revokes the family),
//! and the consents people gave to apps. Client registration is a ledger
//! entry.

use nara_core::{MemberId, Timestamp};
use serde::Serialize;

use crate::ledger::{commit_with_entry, entry_bytes};
use crate::{Result, Store, StoreError, constraint_error, parse_column, with_pool, write_tx};

macro_rules! revoke_family {
    ($tx:ident, $family:expr, $now:expr) => {
        sqlx::query(
            "UPDATE oidc_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL",
        )
        .bind($family)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    };
}

macro_rules! insert_token {
    ($tx:ident, $t:expr) => {{
        let t: &TokenRecord = $t;
        sqlx::query(
            "INSERT INTO oidc_tokens (token_hash, kind, family, client_id, account_id, scope, amr, \
             auth_time, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&t.token_hash)
        .bind(&t.kind)
        .bind(&t.family)
        .bind(&t.client_id)
        .bind(t.account_id)
        .bind(&t.scope)
        .bind(&t.amr)
        .bind(t.auth_time)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// A registered agency app.
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub client_id: String,
    pub agency: MemberId,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// Digest of the client secret; `None` for a public client (PKCE only).
    #[serde(skip)]
    pub secret_hash: Option<String>,
    pub created_at: Timestamp,
    pub revoked: bool,
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    client_id: String,
    agency_id: String,
    name: String,
    redirect_uris: String,
    secret_hash: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> Result<Self> {
        Ok(Client {
            client_id: r.client_id,
            agency: parse_column(&r.agency_id, "oidc_clients.agency_id")?,
            name: r.name,
            redirect_uris: serde_json::from_str(&r.redirect_uris)
                .map_err(|e| StoreError::Corrupt(format!("oidc_clients.redirect_uris: {e}")))?,
            secret_hash: r.secret_hash,
            created_at: Timestamp(r.created_at),
            revoked: r.revoked_at.is_some(),
        })
    }
}

const CLIENT_COLUMNS: &str =
    "client_id, agency_id, name, redirect_uris, secret_hash, created_at, revoked_at";

/// A one-time authorization code as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRecord {
    pub code_hash: String,
    pub client_id: String,
    pub account_id: i64,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scope: String,
    pub amr: String,
    pub auth_time: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The token family the code's tokens will belong to.
    pub family: String,
}

/// An access or refresh token as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRecord {
    pub token_hash: String,
    /// `access` or `refresh`.
    pub kind: String,
    pub family: String,
    pub client_id: String,
    pub account_id: i64,
    pub scope: String,
    pub amr: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// What happened when a code was redeemed.
#[derive(Debug)]
pub enum Redeemed {
    Fresh(Box<CodeRecord>),
    /// The code was used before: its family has now been revoked.
    Replayed,
    Unknown,
}

/// What happened when a refresh token was presented.
#[derive(Debug)]
pub enum Refreshed {
    Fresh(Box<TokenRecord>),
    /// It was rotated before: the whole family has now been revoked.
    Reused,
    Unknown,
}

const TOKEN_COLUMNS: &str = "token_hash, kind, family, client_id, account_id, scope, amr, auth_time, created_at, expires_at, used_at, revoked_at";

impl Store {
    pub async fn register_client(&self, client: &Client, actor: &str) -> Result<()> {
        let uris = serde_json::to_string(&client.redirect_uris)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query(
                "INSERT INTO oidc_clients (client_id, agency_id, name, redirect_uris, secret_hash, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&client.client_id)
            .bind(client.agency.as_str())
            .bind(&client.name)
            .bind(&uris)
            .bind(client.secret_hash.as_deref())
            .bind(actor)
            .bind(client.created_at.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| constraint_error(e, "client"))?;
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "identity.client.registered",
                    actor,
                    vec![
                        format!("client:{}", client.client_id),
                        format!("agency:{}", client.agency)
                    ],
                    client
                )?
            );
        });
        Ok(())
    }

    pub async fn client(&self, client_id: &str) -> Result<Option<Client>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE client_id = $1");
        let row: Option<ClientRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(client_id)
            .fetch_optional(pool)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    pub async fn clients_of_agency(&self, agency: &MemberId) -> Result<Vec<Client>> {
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE agency_id = $1 ORDER BY created_at"
        );
        let rows: Vec<ClientRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(agency.as_str())
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn insert_code(&self, c: &CodeRecord) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query(
                "INSERT INTO oidc_codes (code_hash, client_id, account_id, redirect_uri, code_challenge, \
                 nonce, scope, amr, auth_time, expires_at, family) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&c.code_hash)
            .bind(&c.client_id)
            .bind(c.account_id)
            .bind(&c.redirect_uri)
            .bind(&c.code_challenge)
            .bind(c.nonce.as_deref())
            .bind(&c.scope)
            .bind(&c.amr)
            .bind(c.auth_time)
            .bind(c.expires_at)
            .bind(&c.family)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Redeems a code once. A second redemption revokes every token issued
    /// from it (RFC 6749 §4.1.2, OAuth 2.0 Security BCP §4.5).
    pub async fn redeem_code(&self, code_hash: &str, now: i64) -> Result<Redeemed> {
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let code: Option<CodeRecord> = sqlx::query_as(
                "SELECT code_hash, client_id, account_id, redirect_uri, code_challenge, nonce, scope, \
                 amr, auth_time, expires_at, used_at, family FROM oidc_codes WHERE code_hash = $1",
            )
            .bind(code_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let outcome = match code {
                None => Redeemed::Unknown,
                Some(c) if c.used_at.is_some() => {
                    revoke_family!(tx, &c.family, now);
                    Redeemed::Replayed
                }
                Some(c) => {
                    sqlx::query("UPDATE oidc_codes SET used_at = $2 WHERE code_hash = $1")
                        .bind(code_hash)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Redeemed::Fresh(Box::new(c))
                }
            };
            tx.commit().await?;
            outcome
        }))
    }

    pub async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            insert_token!(tx, t);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Rotates a refresh token: marks it used and stores its successors
    /// (`next`, same family) in one transaction. Presenting a token that
    /// was already rotated revokes the family: someone holds a stolen copy.
    pub async fn rotate_refresh(
        &self,
        token_hash: &str,
        now: i64,
        next: &[TokenRecord],
    ) -> Result<Refreshed> {
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let sql = format!(
                "SELECT {TOKEN_COLUMNS} FROM oidc_tokens WHERE token_hash = $1 AND kind = 'refresh'"
            );
            let current: Option<TokenRecord> = sqlx::query_as(&sql)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
            let outcome = match current {
                None => Refreshed::Unknown,
                Some(t) if t.revoked_at.is_some() || t.expires_at <= now => Refreshed::Unknown,
                Some(t) if t.used_at.is_some() => {
                    revoke_family!(tx, &t.family, now);
                    Refreshed::Reused
                }
                Some(t) => {
                    sqlx::query("UPDATE oidc_tokens SET used_at = $2 WHERE token_hash = $1")
                        .bind(token_hash)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    for n in next {
                        let mut n = n.clone();
                        n.family = t.family.clone();
                        insert_token!(tx, &n);
                    }
                    Refreshed::Fresh(Box::new(t))
                }
            };
            tx.commit().await?;
            outcome
        }))
    }

    pub async fn token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM oidc_tokens WHERE token_hash = $1");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await?))
    }

    /// Revokes a token's whole family (RFC 7009 §2.1: revoking a refresh
    /// token should revoke the access tokens of the same grant).
    pub async fn revoke_token_family(&self, token_hash: &str, client_id: &str) -> Result<bool> {
        let now = Timestamp::now().0;
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let family: Option<String> = sqlx::query_scalar(
                "SELECT family FROM oidc_tokens WHERE token_hash = $1 AND client_id = $2",
            )
            .bind(token_hash)
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(f) = &family {
                revoke_family!(tx, f, now);
            }
            tx.commit().await?;
            family.is_some()
        }))
    }

    pub async fn consent(&self, account_id: i64, client_id: &str) -> Result<Option<String>> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT scope FROM oidc_consents WHERE account_id = $1 AND client_id = $2"
        )
        .bind(account_id)
        .bind(client_id)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn set_consent(&self, account_id: i64, client_id: &str, scope: &str) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query("DELETE FROM oidc_consents WHERE account_id = $1 AND client_id = $2")
                .bind(account_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO oidc_consents (account_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(account_id)
            .bind(client_id)
            .bind(scope)
            .bind(Timestamp::now().0)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The apps an account has let in, with the scope and when.
    pub async fn connected_apps(&self, account_id: i64) -> Result<Vec<(Client, String, i64)>> {
        let rows: Vec<(String, String, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT client_id, scope, granted_at FROM oidc_consents WHERE account_id = $1 ORDER BY granted_at DESC"
        )
        .bind(account_id)
        .fetch_all(pool)
        .await?
        });
        let mut out = Vec::new();
        for (client_id, scope, at) in rows {
            if let Some(c) = self.client(&client_id).await? {
                out.push((c, scope, at));
            }
        }
        Ok(out)
    }

    /// Withdraws consent from an app and revokes every token it holds for the account.
    pub async fn disconnect_app(&self, account_id: i64, client_id: &str) -> Result<bool> {
        let now = Timestamp::now().0;
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n =
                sqlx::query("DELETE FROM oidc_consents WHERE account_id = $1 AND client_id = $2")
                    .bind(account_id)
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            sqlx::query(
                "UPDATE oidc_tokens SET revoked_at = $3 WHERE account_id = $1 AND client_id = $2 AND revoked_at IS NULL",
            )
            .bind(account_id)
            .bind(client_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            n > 0
        }))
    }
}
