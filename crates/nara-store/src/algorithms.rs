//! The algorithm register and decision records: each published version of
//! an entry immutable, each record, review, notice and appeal a ledger entry
//! committed with its row. The ledger holds digests and identifiers only —
//! a record's input (which may be personal data) stays in this table, for
//! the reviewing official, and its SHA-256 goes to the ledger.

use nara_core::Timestamp;
use nara_core::algorithms::sha256_hex;

use crate::ledger::{commit_with_entry, entry_bytes, public_actor, record_openings};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Result, Store, StoreError, with_pool, write_tx};

/// One published version of a register entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlgorithmVersion {
    pub code: String,
    pub version: i64,
    /// The entry, JSON.
    pub entry: String,
    pub entry_sha256: String,
    pub organisation: String,
    pub published_at: i64,
    pub published_by: String,
}

/// A decision record as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DecisionRecord {
    pub id: String,
    pub code: String,
    pub register_version: i64,
    pub organisation: String,
    pub model_version: String,
    pub model_sha256: String,
    /// The input, JSON (never in the ledger).
    pub input: String,
    pub input_sha256: String,
    pub score: f64,
    pub threshold: f64,
    pub outcome: String,
    pub flagged: i64,
    /// The factors, JSON.
    pub factors: String,
    pub subject_hash: Option<String>,
    pub source: Option<String>,
    pub requested_by: String,
    pub state: String,
    pub final_outcome: Option<String>,
    pub reviewer_id: Option<i64>,
    pub reviewer_name: Option<String>,
    pub review_reason: Option<String>,
    pub reviewed_at: Option<i64>,
    pub notified_at: Option<i64>,
    pub appeal_state: Option<String>,
    pub appeal_reason: Option<String>,
    pub appealed_at: Option<i64>,
    pub appeal_official_id: Option<i64>,
    pub appeal_answer: Option<String>,
    pub appeal_decided_at: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, code, register_version, organisation, model_version, model_sha256, \
    input, input_sha256, score, threshold, outcome, flagged, factors, subject_hash, source, \
    requested_by, state, final_outcome, reviewer_id, reviewer_name, review_reason, reviewed_at, \
    notified_at, appeal_state, appeal_reason, appealed_at, appeal_official_id, appeal_answer, \
    appeal_decided_at, created_at";

/// How often reviewers kept or changed one model's outputs.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct ReviewCounts {
    pub code: String,
    pub accepted: i64,
    pub overridden: i64,
    pub awaiting: i64,
    pub automatic: i64,
    pub appeals: i64,
    pub reversed: i64,
}

/// What the ledger says of a record: identifiers and digests, no input.
#[derive(serde::Serialize)]
struct RecordedState<'a> {
    code: &'a str,
    register_version: i64,
    model_version: &'a str,
    model_sha256: &'a str,
    input_sha256: &'a str,
    score: f64,
    threshold: f64,
    outcome: &'a str,
    state: &'a str,
}

/// Which reports a model screens: those to `service` with text for
/// `field`, and the answer `only_if` (an answer's id and value) when given.
#[derive(Debug, Clone, Copy)]
pub struct ReportScreen<'a> {
    pub service: &'a str,
    pub model: &'a str,
    pub field: &'a str,
    pub only_if: Option<(&'a str, &'a str)>,
}

/// A citizen's report not yet screened.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnscreenedReport {
    pub reference: String,
    pub answers: String,
    pub national_id_hash: Option<String>,
    pub submitted_at: i64,
}

/// Who changed a record (an official) or appealed (the person affected).
pub struct Official<'a> {
    pub account_id: i64,
    pub name: &'a str,
}

impl Store {
    /// Publishes `entry` (JSON) as the next version of register entry
    /// `code`, a ledger entry; an entry identical to the latest version is
    /// not published again. The version, and whether it is new.
    pub async fn publish_algorithm(
        &self,
        code: &str,
        organisation: &str,
        entry: &str,
        actor: &str,
    ) -> Result<(i64, bool)> {
        let digest = sha256_hex(entry.as_bytes());
        let now = Timestamp::now().0;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let latest: Option<(i64, String)> = sqlx::query_as(
                "SELECT version, entry_sha256 FROM algorithm_versions WHERE code = $1 \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((version, sha)) = &latest
                && *sha == digest
            {
                return Ok((*version, false));
            }
            let version = latest.map_or(1, |(v, _)| v + 1);
            sqlx::query(
                "INSERT INTO algorithm_versions (code, version, entry, entry_sha256, organisation, \
                 published_at, published_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(code)
            .bind(version)
            .bind(entry)
            .bind(&digest)
            .bind(organisation)
            .bind(now)
            .bind(actor)
            .execute(&mut *tx)
            .await?;
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "algorithm.published",
                    actor,
                    vec![
                        format!("algorithm:{code}"),
                        format!("agency:{organisation}")
                    ],
                    &(code, version, &digest)
                )?
            );
            Ok((version, true))
        })
    }

    /// The latest published version of every register entry, by code.
    pub async fn algorithms(&self) -> Result<Vec<AlgorithmVersion>> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT v.code, v.version, v.entry, v.entry_sha256, v.organisation, v.published_at, \
             v.published_by FROM algorithm_versions v WHERE v.version = \
             (SELECT MAX(w.version) FROM algorithm_versions w WHERE w.code = v.code) ORDER BY v.code"
        )
        .fetch_all(pool)
        .await?
        }))
    }

    /// Every published version of one entry, newest first.
    pub async fn algorithm_versions(&self, code: &str) -> Result<Vec<AlgorithmVersion>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT code, version, entry, entry_sha256, organisation, published_at, published_by \
             FROM algorithm_versions WHERE code = $1 ORDER BY version DESC"
        )
        .bind(code)
        .fetch_all(pool)
        .await?))
    }

    /// Stores decision records and their ledger entries in one transaction
    /// (the group commit's batch). A record whose source this model decided
    /// already (a report is screened once) makes the whole batch a conflict,
    /// and nothing is stored; the group commit then retries one by one.
    pub async fn record_decisions(&self, records: &[DecisionRecord]) -> Result<()> {
        self.record_decisions_claiming(records, &[], 0, 0).await
    }

    /// Stores records as [`Store::record_decisions`] does and, in the same
    /// transaction, claims each of `claims` (the signatures of the requests
    /// that asked for them) as seen at `now_ms`: one commit for the record
    /// and the replay guard. A claim held since `since_ms` is a replay:
    /// nothing is stored and the error is [`StoreError::Replayed`].
    pub async fn record_decisions_claiming(
        &self,
        records: &[DecisionRecord],
        claims: &[String],
        now_ms: i64,
        since_ms: i64,
    ) -> Result<()> {
        let mut entries = Vec::with_capacity(records.len());
        for d in records {
            let state = RecordedState {
                code: &d.code,
                register_version: d.register_version,
                model_version: &d.model_version,
                model_sha256: &d.model_sha256,
                input_sha256: &d.input_sha256,
                score: d.score,
                threshold: d.threshold,
                outcome: &d.outcome,
                state: &d.state,
            };
            entries.push(entry_bytes(
                "algorithm.decided",
                &d.requested_by,
                vec![
                    format!("decision:{}", d.id),
                    format!("algorithm:{}", d.code),
                ],
                &state,
            )?);
        }
        // Each statement is a round trip to the database (on SQLite, to the
        // connection's worker thread): the batch goes in multi-row statements.
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            if !crate::identity::claim_all_in_tx!(tx, claims, now_ms, since_ms) {
                return Err(StoreError::Replayed);
            }
            for chunk in crate::sql::chunks(records) {
                let mut sql = Sql::new(&format!(
                    "INSERT INTO algorithm_decisions ({COLUMNS}) VALUES "
                ));
                for (i, d) in chunk.iter().enumerate() {
                    sql.push(if i == 0 { "(" } else { ", (" });
                    let text = |s: &str| Arg::Text(s.to_owned());
                    let args = [
                        text(&d.id),
                        text(&d.code),
                        Arg::Int(d.register_version),
                        text(&d.organisation),
                        text(&d.model_version),
                        text(&d.model_sha256),
                        text(&d.input),
                        text(&d.input_sha256),
                        Arg::Float(d.score),
                        Arg::Float(d.threshold),
                        text(&d.outcome),
                        Arg::Int(d.flagged),
                        text(&d.factors),
                        Arg::OptText(d.subject_hash.clone()),
                        Arg::OptText(d.source.clone()),
                        text(&d.requested_by),
                        text(&d.state),
                        Arg::OptText(d.final_outcome.clone()),
                        Arg::OptInt(d.reviewer_id),
                        Arg::OptText(d.reviewer_name.clone()),
                        Arg::OptText(d.review_reason.clone()),
                        Arg::OptInt(d.reviewed_at),
                        Arg::OptInt(d.notified_at),
                        Arg::OptText(d.appeal_state.clone()),
                        Arg::OptText(d.appeal_reason.clone()),
                        Arg::OptInt(d.appealed_at),
                        Arg::OptInt(d.appeal_official_id),
                        Arg::OptText(d.appeal_answer.clone()),
                        Arg::OptInt(d.appeal_decided_at),
                        Arg::Int(d.created_at),
                    ];
                    for (j, a) in args.into_iter().enumerate() {
                        if j > 0 {
                            sql.push(", ");
                        }
                        sql.bind(a);
                    }
                    sql.push(")");
                }
                sql.push(" ON CONFLICT DO NOTHING");
                let inserted = bind_args!(crate::sql::query(&sql), sql)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if inserted != chunk.len() as u64 {
                    // One by one (the group commit's retry), the message names the record.
                    return Err(StoreError::Conflict(match chunk {
                        [d] => format!(
                            "a decision of {} for {} exists already",
                            d.code,
                            d.source.as_deref().unwrap_or(&d.id)
                        ),
                        _ => "a decision in this batch exists already".into(),
                    }));
                }
            }
            crate::ledger::append_in_tx!(tx, self.kind() == crate::BackendKind::Sqlite, &entries);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The latest published version of one entry.
    pub async fn algorithm(&self, code: &str) -> Result<Option<AlgorithmVersion>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT code, version, entry, entry_sha256, organisation, published_at, published_by \
             FROM algorithm_versions WHERE code = $1 ORDER BY version DESC LIMIT 1"
        )
        .bind(code)
        .fetch_optional(pool)
        .await?))
    }

    pub async fn decision(&self, id: &str) -> Result<Option<DecisionRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM algorithm_decisions WHERE id = $1");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// The decisions about the person with this national identifier hash,
    /// newest first.
    pub async fn decisions_about(&self, subject_hash: &str) -> Result<Vec<DecisionRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM algorithm_decisions WHERE subject_hash = $1 \
             ORDER BY created_at DESC, id LIMIT 200"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(subject_hash)
            .fetch_all(pool)
            .await?))
    }

    /// What waits for the officials of `organisations`: records awaiting
    /// review and open appeals, oldest first.
    pub async fn oversight_queue(&self, organisations: &[String]) -> Result<Vec<DecisionRecord>> {
        if organisations.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (2..organisations.len() + 2)
            .map(|i| format!("${i}"))
            .collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM algorithm_decisions WHERE (state = $1 OR appeal_state = 'open') \
             AND organisation IN ({}) ORDER BY created_at, id LIMIT 500",
            marks.join(", ")
        );
        Ok(with_pool!(self, |pool| {
            let mut q = sqlx::query_as(&sql).bind("awaiting_review");
            for o in organisations {
                q = q.bind(o);
            }
            q.fetch_all(pool).await?
        }))
    }

    /// The latest records of one model, newest first.
    pub async fn decisions_of(&self, code: &str, limit: i64) -> Result<Vec<DecisionRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM algorithm_decisions WHERE code = $1 \
             ORDER BY created_at DESC, id LIMIT $2"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(code)
            .bind(limit)
            .fetch_all(pool)
            .await?))
    }

    /// Every flagged record of a model, oldest first: for the image model,
    /// the records whose images are kept (nothing else is).
    pub async fn flagged_decisions_of(&self, code: &str) -> Result<Vec<DecisionRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM algorithm_decisions WHERE code = $1 AND flagged <> 0 \
             ORDER BY created_at, id"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(code)
            .fetch_all(pool)
            .await?))
    }

    /// Per model: reviews kept and changed, waiting, automatic, appeals.
    pub async fn review_counts(&self) -> Result<Vec<ReviewCounts>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT code, \
             SUM(CASE WHEN state = 'accepted' THEN 1 ELSE 0 END) AS accepted, \
             SUM(CASE WHEN state = 'overridden' THEN 1 ELSE 0 END) AS overridden, \
             SUM(CASE WHEN state = 'awaiting_review' THEN 1 ELSE 0 END) AS awaiting, \
             SUM(CASE WHEN state = 'automatic' THEN 1 ELSE 0 END) AS automatic, \
             SUM(CASE WHEN appeal_state IS NOT NULL THEN 1 ELSE 0 END) AS appeals, \
             SUM(CASE WHEN appeal_state = 'reversed' THEN 1 ELSE 0 END) AS reversed \
             FROM algorithm_decisions GROUP BY code ORDER BY code"
        )
        .fetch_all(pool)
        .await?))
    }

    /// An official's review of a record awaiting one: `accepted` keeps the
    /// model's outcome, `overridden` replaces it with `final_outcome` for
    /// `reason`. Only from `awaiting_review`: a record another official
    /// reviewed first is a conflict. A ledger entry.
    pub async fn review_decision(
        &self,
        id: &str,
        official: &Official<'_>,
        state: &str,
        final_outcome: &str,
        reason: Option<&str>,
    ) -> Result<()> {
        let now = Timestamp::now().0;
        let actor = format!("account:{}", official.account_id);
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let changed = sqlx::query(
                "UPDATE algorithm_decisions SET state = $1, final_outcome = $2, reviewer_id = $3, \
                 reviewer_name = $4, review_reason = $5, reviewed_at = $6 \
                 WHERE id = $7 AND state = 'awaiting_review'",
            )
            .bind(state)
            .bind(final_outcome)
            .bind(official.account_id)
            .bind(official.name)
            .bind(reason)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::Conflict(format!(
                    "decision {id} is not awaiting review"
                )));
            }
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "algorithm.reviewed",
                    &actor,
                    vec![format!("decision:{id}")],
                    &(
                        id,
                        state,
                        final_outcome,
                        reason.map(|r| sha256_hex(r.as_bytes()))
                    )
                )?
            );
        });
        Ok(())
    }

    /// Marks that the person affected was told of a final decision (her
    /// account shows it); a ledger entry. False if told already.
    pub async fn mark_decision_notified(&self, id: &str) -> Result<bool> {
        let now = Timestamp::now().0;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let changed = sqlx::query(
                "UPDATE algorithm_decisions SET notified_at = $1 WHERE id = $2 \
                 AND notified_at IS NULL AND state <> 'awaiting_review' AND subject_hash IS NOT NULL",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Ok(false);
            }
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "algorithm.notified",
                    "system",
                    vec![format!("decision:{id}")],
                    &(id, now)
                )?
            );
        });
        Ok(true)
    }

    /// The person affected appeals a final decision about her, once. Her
    /// entry names her by a fresh commitment. False if not hers, not final
    /// or appealed already.
    pub async fn appeal_decision(
        &self,
        id: &str,
        account_id: i64,
        subject_hash: &str,
        reason: &str,
    ) -> Result<bool> {
        let now = Timestamp::now().0;
        let mut openings = Vec::new();
        let actor = public_actor(&format!("account:{account_id}"), account_id, &mut openings);
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let changed = sqlx::query(
                "UPDATE algorithm_decisions SET appeal_state = 'open', appeal_reason = $1, \
                 appealed_at = $2 WHERE id = $3 AND subject_hash = $4 AND appeal_state IS NULL \
                 AND state <> 'awaiting_review'",
            )
            .bind(reason)
            .bind(now)
            .bind(id)
            .bind(subject_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Ok(false);
            }
            record_openings!(tx, &openings);
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "algorithm.appealed",
                    &actor,
                    vec![format!("decision:{id}")],
                    &(id, sha256_hex(reason.as_bytes()))
                )?
            );
        });
        Ok(true)
    }

    /// An official decides an open appeal: `upheld` keeps the decision,
    /// `reversed` replaces its outcome with `final_outcome`. Never the
    /// official who reviewed it (checked again here, in the statement). A
    /// ledger entry.
    pub async fn decide_appeal(
        &self,
        id: &str,
        official: &Official<'_>,
        appeal_state: &str,
        final_outcome: &str,
        answer: &str,
    ) -> Result<()> {
        let now = Timestamp::now().0;
        let actor = format!("account:{}", official.account_id);
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let changed = sqlx::query(
                "UPDATE algorithm_decisions SET appeal_state = $1, final_outcome = $2, \
                 appeal_official_id = $3, appeal_answer = $4, appeal_decided_at = $5 \
                 WHERE id = $6 AND appeal_state = 'open' \
                 AND (reviewer_id IS NULL OR reviewer_id <> $3)",
            )
            .bind(appeal_state)
            .bind(final_outcome)
            .bind(official.account_id)
            .bind(answer)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::Conflict(format!(
                    "decision {id} has no open appeal this official may decide"
                )));
            }
            commit_with_entry!(
                self,
                tx,
                entry_bytes(
                    "algorithm.appeal_decided",
                    &actor,
                    vec![format!("decision:{id}")],
                    &(
                        id,
                        appeal_state,
                        final_outcome,
                        sha256_hex(answer.as_bytes())
                    )
                )?
            );
        });
        Ok(())
    }

    /// Reports to `service` submitted at or after `since` whose answers
    /// hold text for `field` (and, when given, the answer `only_if`), that
    /// no decision of model `code` has screened yet, in order of
    /// submission, with the reporter's national identifier hash. Read from
    /// an index from `since` on, so a caller that moves `since` along reads
    /// what is new, not every report ever screened. The answers' match is a
    /// prefilter on their JSON text: the caller checks the parsed answers.
    pub async fn unscreened_reports(
        &self,
        report: &ReportScreen<'_>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<UnscreenedReport>> {
        // `_` in an answer is a LIKE wildcard: the prefilter may let more
        // through, never fewer.
        let has_field = format!("%\"{}\":%", report.field);
        let condition = report.only_if.map_or_else(
            || "%".to_owned(),
            |(id, value)| format!("%\"{id}\":\"{value}\"%"),
        );
        Ok(with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT a.reference, a.answers, acc.national_id_hash, a.submitted_at FROM applications a \
             JOIN accounts acc ON acc.id = a.account_id \
             WHERE a.service_code = $1 AND a.submitted_at >= $4 \
             AND a.answers LIKE $5 AND a.answers LIKE $6 \
             AND NOT EXISTS (SELECT 1 FROM algorithm_decisions d WHERE d.code = $2 \
             AND d.source = 'application:' || a.reference) ORDER BY a.submitted_at, a.id LIMIT $3"
        )
        .bind(report.service)
        .bind(report.model)
        .bind(limit)
        .bind(since)
        .bind(&has_field)
        .bind(&condition)
        .fetch_all(pool)
        .await?
        }))
    }
}
