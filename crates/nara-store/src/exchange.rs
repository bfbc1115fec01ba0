//! The exchange's storage: data services, access rights, consents, hosted
//! registries and the message log.
//!
//! Services and access rights change rarely and are read on every exchange,
//! so gateways keep them in memory (a directory) and reload when
//! `exchange_version` moves; every change bumps it in its own transaction.
//! Consents are read from the database on every exchange, so a revocation
//! takes effect at once. The message log is appended in batches (group
//! commit): each record with its ledger entry, one transaction per batch.

use serde::Serialize;

use crate::identity::claim_all_in_tx;
use crate::ledger::{append_in_tx, commit_with_entry, entry_bytes};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Result, Store, StoreError, constraint_error, with_pool, write_tx};

const BUMP_EXCHANGE: &str = "UPDATE exchange_version SET version = version + 1 WHERE id = 1";

/// A provider subsystem's data service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DataService {
    /// `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`.
    pub id: String,
    pub agency_id: String,
    pub subsystem: String,
    pub service_code: String,
    pub version: String,
    pub title: String,
    /// The OpenAPI 3 description, as JSON text.
    #[serde(skip)]
    pub openapi: String,
    /// 1 when the service returns personal data (purpose and consent or a
    /// legal basis required).
    pub personal: i64,
    /// Accepted purpose codes, space-separated.
    pub purposes: String,
    /// Accepted legal bases, newline-separated.
    pub legal_bases: String,
    /// `registry` or `url`.
    pub endpoint_kind: String,
    /// The registry code, or the provider's base URL (fixed here, never
    /// taken from a request).
    pub endpoint: String,
    pub created_at: i64,
}

impl DataService {
    pub fn purpose_list(&self) -> impl Iterator<Item = &str> {
        purpose_codes(&self.purposes)
    }
    pub fn legal_basis_list(&self) -> impl Iterator<Item = &str> {
        legal_basis_lines(&self.legal_bases)
    }
}

/// Purpose codes as stored: space-separated.
fn purpose_codes(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
}

/// Legal bases as stored: one a line.
fn legal_basis_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// A client subsystem's right to call a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AccessRight {
    pub id: i64,
    pub service_id: String,
    pub client_id: String,
    /// Space-separated field names; empty means the whole record.
    pub fields: String,
    /// The purposes this client may state (space-separated codes).
    pub purposes: String,
    /// The legal bases this client may name instead of consent (one a line).
    pub legal_bases: String,
    pub granted_by: String,
    pub granted_at: i64,
    pub revoked_at: Option<i64>,
}

impl AccessRight {
    pub fn purpose_list(&self) -> impl Iterator<Item = &str> {
        purpose_codes(&self.purposes)
    }
    pub fn legal_basis_list(&self) -> impl Iterator<Item = &str> {
        legal_basis_lines(&self.legal_bases)
    }
}

/// A right to be granted: to which service, for which client, what it shows
/// and what the client may invoke.
#[derive(Debug, Clone, Serialize)]
pub struct NewAccessRight<'a> {
    pub service_id: &'a str,
    pub client_id: &'a str,
    pub fields: &'a str,
    pub purposes: &'a str,
    pub legal_bases: &'a str,
}

/// A citizen's consent to one agency fetching one service's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Consent {
    pub id: String,
    pub account_id: i64,
    #[serde(skip)]
    pub subject_hash: String,
    pub client_agency: String,
    pub service_id: String,
    pub purpose: String,
    pub granted_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

impl Consent {
    pub fn is_valid_at(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now_ms
    }
}

/// A registry nara hosts for an agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Registry {
    pub code: String,
    pub agency_id: String,
    pub title: String,
    /// A JSON Schema of one record.
    pub schema: String,
    pub created_at: i64,
}

/// One exchange's message-log record: metadata only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ExchangeRecord {
    #[serde(skip)]
    pub id: i64,
    pub xroad_id: String,
    pub request_id: String,
    pub client_id: String,
    pub service_id: String,
    pub method: String,
    pub path: String,
    pub purpose: String,
    pub consent_id: String,
    pub legal_basis: String,
    /// The subject's keyed hash (pseudonym), empty when none.
    pub subject_hash: String,
    pub user_id: String,
    pub issue: String,
    pub request_hash: String,
    pub response_hash: String,
    /// The client's RFC 9421 signature as sent.
    pub client_signature: String,
    /// This gateway's Ed25519 signature over the record's digest.
    pub gateway_signature: String,
    /// The other gateway's signature, in a federated exchange.
    pub peer_signature: String,
    pub status: i64,
    /// `ok`, or the X-Road error type.
    pub outcome: String,
    pub started_at: i64,
    pub duration_us: i64,
}

/// Per service and client: what the operator page and `/metrics` show.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ExchangeStats {
    pub service_id: String,
    pub client_id: String,
    pub exchanges: i64,
    pub errors: i64,
    pub mean_us: i64,
    pub max_us: i64,
}

const SERVICE_COLUMNS: &str = "id, agency_id, subsystem, service_code, version, title, openapi, \
    personal, purposes, legal_bases, endpoint_kind, endpoint, created_at";
const RIGHT_COLUMNS: &str =
    "id, service_id, client_id, fields, purposes, legal_bases, granted_by, granted_at, revoked_at";
const CONSENT_COLUMNS: &str = "id, account_id, subject_hash, client_agency, service_id, purpose, \
    granted_at, expires_at, revoked_at";
pub(crate) const LOG_COLUMNS: &str = "xroad_id, request_id, client_id, service_id, method, path, purpose, \
    consent_id, legal_basis, subject_hash, user_id, issue, request_hash, response_hash, \
    client_signature, gateway_signature, peer_signature, status, outcome, started_at, duration_us";

fn text(s: &str) -> Arg {
    Arg::Text(s.to_owned())
}

impl Store {
    /// Runs one statement and its ledger entry in one transaction;
    /// `directory`: it changes services or rights, so gateways reload.
    /// Returns the rows the statement touched (0: nothing committed).
    async fn exchange_write(&self, sql: Sql, entry: Vec<u8>, directory: bool) -> Result<u64> {
        self.exchange_write_opening(sql, entry, directory, &[])
            .await
    }

    /// [`Self::exchange_write`], storing what opens the entry's citizen commitment too.
    async fn exchange_write_opening(
        &self,
        sql: Sql,
        entry: Vec<u8>,
        directory: bool,
        openings: &[crate::ledger::Opening],
    ) -> Result<u64> {
        let what = entry_kind_hint(&sql.text);
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = bind_args!(crate::sql::query(&sql), sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| constraint_error(e, what))?
                .rows_affected();
            if n == 0 {
                return Ok(0);
            }
            if directory {
                sqlx::query(BUMP_EXCHANGE).execute(&mut *tx).await?;
            }
            crate::ledger::record_openings!(tx, openings);
            commit_with_entry!(self, tx, entry);
            n
        }))
    }

    pub async fn exchange_version(&self) -> Result<i64> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT version FROM exchange_version WHERE id = 1"
        )
        .fetch_one(pool)
        .await?))
    }

    // --------------------------------------------------------- data services

    pub async fn register_data_service(&self, s: &DataService, actor: &str) -> Result<()> {
        let sql = Sql::with_args(
            &format!(
                "INSERT INTO data_services ({SERVICE_COLUMNS}, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            ),
            vec![
                text(&s.id),
                text(&s.agency_id),
                text(&s.subsystem),
                text(&s.service_code),
                text(&s.version),
                text(&s.title),
                text(&s.openapi),
                Arg::Int(s.personal),
                text(&s.purposes),
                text(&s.legal_bases),
                text(&s.endpoint_kind),
                text(&s.endpoint),
                Arg::Int(s.created_at),
                text(actor),
            ],
        );
        let entry = entry_bytes(
            "exchange.service.registered",
            actor,
            vec![
                format!("service:{}", s.id),
                format!("agency:{}", s.agency_id),
            ],
            s,
        )?;
        self.exchange_write(sql, entry, true).await?;
        Ok(())
    }

    pub async fn data_services(&self) -> Result<Vec<DataService>> {
        let sql = format!("SELECT {SERVICE_COLUMNS} FROM data_services ORDER BY id");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .fetch_all(pool)
            .await?))
    }

    // --------------------------------------------------------- access rights

    /// Grants `client_id` the service (fields: the minimal view; empty = all).
    /// Grants a right; refused while the client holds one to the service.
    pub async fn grant_access(&self, right: &NewAccessRight<'_>, actor: &str) -> Result<()> {
        let now = nara_core::Timestamp::now().0;
        let sql = Sql::with_args(
            "INSERT INTO access_rights (service_id, client_id, fields, purposes, legal_bases, granted_by, granted_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS (SELECT 1 FROM access_rights \
             WHERE service_id = $1 AND client_id = $2 AND revoked_at IS NULL)",
            vec![
                text(right.service_id),
                text(right.client_id),
                text(right.fields),
                text(right.purposes),
                text(right.legal_bases),
                text(actor),
                Arg::Int(now),
            ],
        );
        let entry = entry_bytes(
            "exchange.access.granted",
            actor,
            vec![
                format!("service:{}", right.service_id),
                format!("client:{}", right.client_id),
            ],
            &(right, now),
        )?;
        match self.exchange_write(sql, entry, true).await? {
            0 => Err(StoreError::Conflict(
                "this client already holds a right to this service; revoke it first".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Sets what the client of an active right may invoke (the demo's own
    /// rights, brought up to date on a second start); a ledger entry.
    pub async fn set_access_bases(&self, right: &NewAccessRight<'_>, actor: &str) -> Result<bool> {
        let sql = Sql::with_args(
            "UPDATE access_rights SET purposes = $3, legal_bases = $4 \
             WHERE service_id = $1 AND client_id = $2 AND revoked_at IS NULL",
            vec![
                text(right.service_id),
                text(right.client_id),
                text(right.purposes),
                text(right.legal_bases),
            ],
        );
        let entry = entry_bytes(
            "exchange.access.changed",
            actor,
            vec![
                format!("service:{}", right.service_id),
                format!("client:{}", right.client_id),
            ],
            right,
        )?;
        Ok(self.exchange_write(sql, entry, true).await? > 0)
    }

    /// Revokes a right of a service of `agency` (0 rows: not theirs or gone).
    pub async fn revoke_access(&self, id: i64, agency: &str, actor: &str) -> Result<bool> {
        let now = nara_core::Timestamp::now().0;
        let sql = Sql::with_args(
            "UPDATE access_rights SET revoked_at = $1, revoked_by = $2 WHERE id = $3 \
             AND revoked_at IS NULL AND service_id IN \
             (SELECT id FROM data_services WHERE agency_id = $4)",
            vec![Arg::Int(now), text(actor), Arg::Int(id), text(agency)],
        );
        let entry = entry_bytes(
            "exchange.access.revoked",
            actor,
            vec![format!("access_right:{id}"), format!("agency:{agency}")],
            &(id, now),
        )?;
        Ok(self.exchange_write(sql, entry, true).await? > 0)
    }

    pub async fn access_rights(&self) -> Result<Vec<AccessRight>> {
        let sql = format!("SELECT {RIGHT_COLUMNS} FROM access_rights ORDER BY id");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .fetch_all(pool)
            .await?))
    }

    // -------------------------------------------------------------- consents

    pub async fn grant_consent(&self, c: &Consent) -> Result<()> {
        self.grant_consents(std::slice::from_ref(c)).await
    }

    /// Records consents in one transaction, each with its ledger entry (the
    /// citizen named by a fresh commitment, never by account).
    pub async fn grant_consents(&self, consents: &[Consent]) -> Result<()> {
        let mut openings = Vec::new();
        let mut entries = Vec::with_capacity(consents.len());
        for c in consents {
            let actor = crate::ledger::public_actor(
                &format!("account:{}", c.account_id),
                c.account_id,
                &mut openings,
            );
            entries.push(entry_bytes(
                "exchange.consent.granted",
                &actor,
                vec![
                    format!("consent:{}", c.id),
                    format!("service:{}", c.service_id),
                ],
                c,
            )?);
        }
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            for chunk in crate::sql::chunks(consents) {
                let mut sql =
                    Sql::new(&format!("INSERT INTO consents ({CONSENT_COLUMNS}) VALUES "));
                for (i, c) in chunk.iter().enumerate() {
                    sql.push(if i == 0 { "(" } else { ", (" });
                    let args = [
                        text(&c.id),
                        Arg::Int(c.account_id),
                        text(&c.subject_hash),
                        text(&c.client_agency),
                        text(&c.service_id),
                        text(&c.purpose),
                        Arg::Int(c.granted_at),
                        Arg::Int(c.expires_at),
                    ];
                    for a in args {
                        sql.bind(a).push(", ");
                    }
                    sql.push("NULL)");
                }
                bind_args!(crate::sql::query(&sql), sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| constraint_error(e, "this consent"))?;
            }
            crate::ledger::record_openings!(tx, &openings);
            append_in_tx!(tx, self.kind() == crate::BackendKind::Sqlite, &entries);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Revokes the account's own consent; false if not theirs or already revoked.
    pub async fn revoke_consent(&self, id: &str, account_id: i64) -> Result<bool> {
        let now = nara_core::Timestamp::now().0;
        let sql = Sql::with_args(
            "UPDATE consents SET revoked_at = $1 WHERE id = $2 AND account_id = $3 AND revoked_at IS NULL",
            vec![Arg::Int(now), text(id), Arg::Int(account_id)],
        );
        let mut openings = Vec::new();
        let actor = crate::ledger::public_actor(
            &format!("account:{account_id}"),
            account_id,
            &mut openings,
        );
        let entry = entry_bytes(
            "exchange.consent.revoked",
            &actor,
            vec![format!("consent:{id}")],
            &(id, now),
        )?;
        Ok(self
            .exchange_write_opening(sql, entry, false, &openings)
            .await?
            > 0)
    }

    pub async fn exchange_consent(&self, id: &str) -> Result<Option<Consent>> {
        let sql = format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE id = $1");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn consents_of(&self, account_id: i64) -> Result<Vec<Consent>> {
        let sql = format!(
            "SELECT {CONSENT_COLUMNS} FROM consents WHERE account_id = $1 ORDER BY granted_at DESC, id"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(account_id)
            .fetch_all(pool)
            .await?))
    }

    // ------------------------------------------------------------ registries

    pub async fn create_registry(&self, r: &Registry, actor: &str) -> Result<()> {
        let sql = Sql::with_args(
            "INSERT INTO registries (code, agency_id, title, schema, created_at) VALUES ($1, $2, $3, $4, $5)",
            vec![
                text(&r.code),
                text(&r.agency_id),
                text(&r.title),
                text(&r.schema),
                Arg::Int(r.created_at),
            ],
        );
        let entry = entry_bytes(
            "exchange.registry.created",
            actor,
            vec![
                format!("registry:{}", r.code),
                format!("agency:{}", r.agency_id),
            ],
            r,
        )?;
        self.exchange_write(sql, entry, true).await?;
        Ok(())
    }

    pub async fn registries(&self) -> Result<Vec<Registry>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT code, agency_id, title, schema, created_at FROM registries ORDER BY code"
        )
        .fetch_all(pool)
        .await?))
    }

    /// Writes records (replacing any with the same subject), in chunks of
    /// 500, one ledger entry per chunk naming the registry and the count.
    pub async fn put_registry_records(
        &self,
        registry: &str,
        records: &[(String, String)],
        actor: &str,
    ) -> Result<()> {
        let now = nara_core::Timestamp::now().0;
        for chunk in records.chunks(500) {
            let mut sql = Sql::new(
                "INSERT INTO registry_records (registry, subject_hash, record, updated_at) VALUES ",
            );
            for (i, (subject, record)) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(text(registry)).push(", ");
                sql.bind(text(subject)).push(", ");
                sql.bind(text(record)).push(", ");
                sql.bind(Arg::Int(now)).push(")");
            }
            sql.push(
                " ON CONFLICT (registry, subject_hash) DO UPDATE SET record = excluded.record, \
                 updated_at = excluded.updated_at",
            );
            let entry = entry_bytes(
                "exchange.registry.records_written",
                actor,
                vec![format!("registry:{registry}")],
                &(registry, chunk.len(), now),
            )?;
            self.exchange_write(sql, entry, false).await?;
        }
        Ok(())
    }

    pub async fn registry_record(
        &self,
        registry: &str,
        subject_hash: &str,
    ) -> Result<Option<String>> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT record FROM registry_records WHERE registry = $1 AND subject_hash = $2"
        )
        .bind(registry)
        .bind(subject_hash)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn registry_size(&self, registry: &str) -> Result<i64> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM registry_records WHERE registry = $1"
        )
        .bind(registry)
        .fetch_one(pool)
        .await?))
    }

    /// Every `(agency, subsystem)` that publishes a service or holds a key.
    pub async fn subsystems(&self) -> Result<Vec<(String, String)>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT agency_id, subsystem FROM data_services UNION \
             SELECT agency_id, subsystem FROM machine_clients WHERE revoked_at IS NULL AND pending_since IS NULL \
             ORDER BY 1, 2"
        )
        .fetch_all(pool)
        .await?
        }))
    }

    // ----------------------------------------------------------- message log

    /// Appends exchange records and their ledger entries in one transaction
    /// (the gateway's group commit). A duplicate `(client, X-Road-Id)` fails
    /// the whole batch with a conflict; the caller retries one by one.
    pub async fn append_exchanges(&self, records: &[ExchangeRecord]) -> Result<()> {
        self.append_exchanges_claiming(records, &[], 0, 0).await
    }

    /// Appends records as [`Store::append_exchanges`] does and, in the same
    /// transaction, claims each of `claims` (the signatures whose requests
    /// made them) as seen at `now_ms` (see [`Store::claim_signatures`]). A
    /// claim already held since `since_ms` is a replay: nothing is written
    /// and the error is [`StoreError::Replayed`], so that a group commit
    /// retries its batch one by one and fails only the replayed request.
    pub async fn append_exchanges_claiming(
        &self,
        records: &[ExchangeRecord],
        claims: &[String],
        now_ms: i64,
        since_ms: i64,
    ) -> Result<()> {
        if records.is_empty() && claims.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(records.len());
        for r in records {
            entries.push(entry_bytes(
                "exchange",
                &format!("client:{}", r.client_id),
                vec![
                    format!("service:{}", r.service_id),
                    format!("xroad_id:{}", r.xroad_id),
                ],
                r,
            )?);
        }
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            if !claim_all_in_tx!(tx, claims, now_ms, since_ms) {
                return Err(StoreError::Replayed);
            }
            // 21 columns a row: 256 rows stay under SQLite's 32,766 parameters.
            for chunk in crate::sql::chunks(records) {
                let mut sql =
                    Sql::new(&format!("INSERT INTO exchange_log ({LOG_COLUMNS}) VALUES "));
                for (i, r) in chunk.iter().enumerate() {
                    sql.push(if i == 0 { "(" } else { ", (" });
                    let args = [
                        text(&r.xroad_id),
                        text(&r.request_id),
                        text(&r.client_id),
                        text(&r.service_id),
                        text(&r.method),
                        text(&r.path),
                        text(&r.purpose),
                        text(&r.consent_id),
                        text(&r.legal_basis),
                        text(&r.subject_hash),
                        text(&r.user_id),
                        text(&r.issue),
                        text(&r.request_hash),
                        text(&r.response_hash),
                        text(&r.client_signature),
                        text(&r.gateway_signature),
                        text(&r.peer_signature),
                        Arg::Int(r.status),
                        text(&r.outcome),
                        Arg::Int(r.started_at),
                        Arg::Int(r.duration_us),
                    ];
                    for (j, a) in args.into_iter().enumerate() {
                        if j > 0 {
                            sql.push(", ");
                        }
                        sql.bind(a);
                    }
                    sql.push(")");
                }
                bind_args!(crate::sql::query(&sql), sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| constraint_error(e, "an exchange with this X-Road-Id"))?;
            }
            append_in_tx!(tx, self.kind() == crate::BackendKind::Sqlite, &entries);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The exchanges that concerned a subject, newest first.
    pub async fn exchanges_of_subject(
        &self,
        subject_hash: &str,
        limit: i64,
    ) -> Result<Vec<ExchangeRecord>> {
        let sql = format!(
            "SELECT id, {LOG_COLUMNS} FROM exchange_log WHERE subject_hash = $1 ORDER BY id DESC LIMIT $2"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(subject_hash)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    pub async fn exchange_count(&self) -> Result<i64> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM exchange_log"
        )
        .fetch_one(pool)
        .await?))
    }

    /// The log entry of `(client, X-Road-Id)`, if it was logged.
    pub async fn exchange_by_id(
        &self,
        client_id: &str,
        xroad_id: &str,
    ) -> Result<Option<ExchangeRecord>> {
        let sql = format!(
            "SELECT id, {LOG_COLUMNS} FROM exchange_log WHERE client_id = $1 AND xroad_id = $2"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(client_id)
            .bind(xroad_id)
            .fetch_optional(pool)
            .await?))
    }

    /// Counts, errors and latencies per service and client since `since_ms`.
    pub async fn exchange_stats(&self, since_ms: i64) -> Result<Vec<ExchangeStats>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT service_id, client_id, COUNT(*) AS exchanges, \
             SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS errors, \
             CAST(AVG(duration_us) AS BIGINT) AS mean_us, MAX(duration_us) AS max_us \
             FROM exchange_log WHERE started_at >= $1 GROUP BY service_id, client_id \
             ORDER BY exchanges DESC LIMIT 500"
        )
        .bind(since_ms)
        .fetch_all(pool)
        .await?))
    }
}

/// What a constraint violation names, from the statement's table.
fn entry_kind_hint(sql: &str) -> &'static str {
    if sql.contains("data_services") {
        "this service"
    } else if sql.contains("registries") {
        "this registry"
    } else if sql.contains("consents") {
        "this consent"
    } else {
        "this record"
    }
}
