//! Citizens' applications: drafts kept on the server (resumable on any
//! device), submission with the fetched evidence, and every change of state
//! with its event (the status timeline) and ledger entry.

use serde::Serialize;

use crate::ledger::entry_bytes;
use crate::{Result, Store, StoreError, with_pool, write_tx};

/// An application as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Application {
    pub id: i64,
    pub reference: String,
    pub service_code: String,
    pub version: i64,
    pub agency_id: String,
    pub account_id: i64,
    /// `draft` until submitted, then the workflow's states.
    pub state: String,
    /// JSON object: field id → value.
    pub answers: String,
    /// JSON object: evidence id → the fetched fields.
    pub evidence: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub submitted_at: Option<i64>,
    pub due_at: Option<i64>,
    pub decided_at: Option<i64>,
    /// The official who claimed it.
    pub assigned_to: Option<i64>,
}

/// An application made whole in one request, to be stored as submitted:
/// everything but its `id`, the states it moves through, who submitted it.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub app: Application,
    pub states: Vec<(&'static str, &'static str)>,
    pub actor: String,
    /// The document an automatic service issues, stored with the submission
    /// (its `application_id` is set when the application's row is).
    pub credential: Option<IssuedCredential>,
}

/// One step of an application's past (see [`Store::insert_history`]).
#[derive(Debug, Clone)]
pub struct PastStep {
    pub to: String,
    /// `account:N` (the applicant or an official) or `system`.
    pub actor: String,
    pub at: i64,
    pub reason: String,
}

/// An application with its whole past, written at once (the demo's year of
/// activity): `app` as it stands after `steps`, and the applicant's rating
/// (score, when) if any.
#[derive(Debug, Clone)]
pub struct PastApplication {
    pub app: Application,
    pub steps: Vec<PastStep>,
    pub rating: Option<(i64, i64)>,
    /// The files its answers name (`application_id` set when it is stored).
    pub uploads: Vec<Upload>,
}

/// One step of an application's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ApplicationEvent {
    pub at: i64,
    pub actor: String,
    pub from_state: String,
    pub to_state: String,
    pub reason: String,
    pub note: String,
}

const COLUMNS: &str = "id, reference, service_code, version, agency_id, account_id, state, answers, \
    evidence, created_at, updated_at, submitted_at, due_at, decided_at, assigned_to";

/// What the public ledger records of a change: no answers, no person.
#[derive(Serialize)]
struct Recorded<'a> {
    reference: &'a str,
    service: &'a str,
    version: i64,
    from: &'a str,
    to: &'a str,
    reason: &'a str,
}

/// The ledger entries of an application moving from `draft` through
/// `steps` (the state it moves to, who moved it, why); the applicant's own
/// steps name a fresh commitment each (`openings` gets what opens them).
fn state_entries<'a>(
    app: &Application,
    steps: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    openings: &mut Vec<crate::ledger::Opening>,
) -> Result<Vec<Vec<u8>>> {
    let mut entries = Vec::new();
    let mut from = "draft";
    for (to, actor, reason) in steps {
        let named = crate::ledger::public_actor(actor, app.account_id, openings);
        entries.push(entry_bytes(
            "application.state",
            &named,
            vec![
                format!("application:{}", app.reference),
                format!("service:{}/{}", app.service_code, app.version),
            ],
            &Recorded {
                reference: &app.reference,
                service: &app.service_code,
                version: app.version,
                from,
                to,
                reason,
            },
        )?);
        from = to;
    }
    Ok(entries)
}

/// A submission's steps as (state, actor, reason): the system's own steps
/// are the system's, the others the submitter's.
fn submitted_steps<'a>(
    states: &'a [(&'a str, &'a str)],
    actor: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> + Clone {
    states
        .iter()
        .map(move |(to, by)| (*to, if *by == "system" { "system" } else { actor }, ""))
}

/// Inserts the timeline events of a move from `draft` through `$steps`
/// (the state, the actor, the time, the reason).
macro_rules! insert_events {
    ($tx:ident, $id:expr, $steps:expr) => {{
        let mut from = "draft";
        for (to, actor, at, reason) in $steps {
            sqlx::query(
                "INSERT INTO application_events (application_id, at, actor, from_state, to_state, reason, note) \
                 VALUES ($1, $2, $3, $4, $5, $6, '')",
            )
            .bind($id)
            .bind(at)
            .bind(actor)
            .bind(from)
            .bind(to)
            .bind(reason)
            .execute(&mut *$tx)
            .await?;
            from = to;
        }
    }};
}

/// Inserts an application row whole (every column but `id`), returning it
/// as stored; a reference drawn twice is a conflict.
macro_rules! insert_whole {
    ($tx:ident, $a:expr) => {{
        let a: &Application = $a;
        let stored: Application = sqlx::query_as(&format!(
            "INSERT INTO applications (reference, service_code, version, agency_id, account_id, state, \
             answers, evidence, created_at, updated_at, submitted_at, due_at, decided_at, assigned_to) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {COLUMNS}"
        ))
        .bind(&a.reference)
        .bind(&a.service_code)
        .bind(a.version)
        .bind(&a.agency_id)
        .bind(a.account_id)
        .bind(&a.state)
        .bind(&a.answers)
        .bind(&a.evidence)
        .bind(a.created_at)
        .bind(a.updated_at)
        .bind(a.submitted_at)
        .bind(a.due_at)
        .bind(a.decided_at)
        .bind(a.assigned_to)
        .fetch_one(&mut *$tx)
        .await
        .map_err(|e| crate::constraint_error(e, "this reference"))?;
        stored
    }};
}

/// Stores (or replaces) the file attached to a field of application `$id`.
macro_rules! insert_upload {
    ($tx:ident, $id:expr, $u:expr) => {{
        let u: &Upload = $u;
        sqlx::query(
            "INSERT INTO uploads (application_id, field, hash, media_type, size, scan, uploaded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (application_id, field) DO UPDATE \
             SET hash = excluded.hash, media_type = excluded.media_type, size = excluded.size, \
             scan = excluded.scan, uploaded_at = excluded.uploaded_at",
        )
        .bind($id)
        .bind(&u.field)
        .bind(&u.hash)
        .bind(&u.media_type)
        .bind(u.size)
        .bind(&u.scan)
        .bind(u.uploaded_at)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Puts a line in the applicant's inbox, in the transaction of the change.
macro_rules! notify {
    ($tx:ident, $application_id:expr, $now:expr, $kind:expr) => {
        sqlx::query(
            "INSERT INTO notifications (account_id, application_id, at, kind, state, emailed_at) \
             SELECT a.account_id, a.id, $2, $3, a.state, CASE WHEN acc.email IS NULL THEN $2 END \
             FROM applications a JOIN accounts acc ON acc.id = a.account_id WHERE a.id = $1",
        )
        .bind($application_id)
        .bind($now)
        .bind($kind)
        .execute(&mut *$tx)
        .await?;
    };
}

/// Stores an issued document for application `$application_id` and tells
/// the applicant, inside the transaction that decided it.
macro_rules! insert_credential {
    ($tx:ident, $c:expr, $application_id:expr) => {{
        let c: &IssuedCredential = $c;
        sqlx::query(
            "INSERT INTO credentials (id, application_id, agency_id, credential_type, jwt, issued_at, status_index) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind($application_id)
        .bind(&c.agency_id)
        .bind(&c.credential_type)
        .bind(&c.jwt)
        .bind(c.issued_at)
        .bind(c.status_index)
        .execute(&mut *$tx)
        .await
        .map_err(|e| crate::constraint_error(e, "that status list position"))?;
        notify!($tx, $application_id, c.issued_at, "document");
    }};
}

/// The ledger entry of an issued document (its id and type, nothing personal).
fn credential_entry(c: &IssuedCredential, actor: &str) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Issued<'a> {
        id: &'a str,
        agency: &'a str,
        credential_type: &'a str,
    }
    entry_bytes(
        "credential.issued",
        actor,
        vec![
            format!("credential:{}", c.id),
            format!("agency:{}", c.agency_id),
        ],
        &Issued {
            id: &c.id,
            agency: &c.agency_id,
            credential_type: &c.credential_type,
        },
    )
}

impl Store {
    /// The account's draft for a service, if any.
    pub async fn draft_of(&self, account_id: i64, code: &str) -> Result<Option<Application>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM applications WHERE account_id = $1 AND service_code = $2 \
             AND state = 'draft' ORDER BY id DESC LIMIT 1"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(account_id)
            .bind(code)
            .fetch_optional(pool)
            .await?))
    }

    /// Starts a draft under a definition version (private: no ledger entry).
    pub async fn create_draft(
        &self,
        reference: &str,
        account_id: i64,
        code: &str,
        version: i64,
        agency: &str,
    ) -> Result<Application> {
        let now = nara_core::Timestamp::now().0;
        let sql = format!(
            "INSERT INTO applications (reference, service_code, version, agency_id, account_id, state, \
             answers, evidence, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'draft', '{{}}', '{{}}', $6, $6) \
             RETURNING {COLUMNS}"
        );
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let app: Application = sqlx::query_as(&sql)
                .bind(reference)
                .bind(code)
                .bind(version)
                .bind(agency)
                .bind(account_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| crate::constraint_error(e, "this reference"))?;
            tx.commit().await?;
            app
        }))
    }

    /// Saves a draft's answers (only while it is a draft of this account).
    pub async fn save_answers(&self, id: i64, account_id: i64, answers: &str) -> Result<bool> {
        let now = nara_core::Timestamp::now().0;
        let n = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query(
                "UPDATE applications SET answers = $1, updated_at = $2 \
                 WHERE id = $3 AND account_id = $4 AND state = 'draft'",
            )
            .bind(answers)
            .bind(now)
            .bind(id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    pub async fn application(&self, reference: &str) -> Result<Option<Application>> {
        let sql = format!("SELECT {COLUMNS} FROM applications WHERE reference = $1");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(reference)
            .fetch_optional(pool)
            .await?))
    }

    pub async fn applications_of(&self, account_id: i64) -> Result<Vec<Application>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM applications WHERE account_id = $1 ORDER BY updated_at DESC LIMIT 200"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(account_id)
            .fetch_all(pool)
            .await?))
    }

    pub async fn application_events(&self, id: i64) -> Result<Vec<ApplicationEvent>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT at, actor, from_state, to_state, reason, note FROM application_events \
             WHERE application_id = $1 ORDER BY id"
        )
        .bind(id)
        .fetch_all(pool)
        .await?))
    }

    /// Submits a draft: stores the evidence, sets the due date, and moves it
    /// through `states` (e.g. `submitted`, then `approved` for an automatic
    /// service), an event and a ledger entry for each, in one transaction.
    pub async fn submit_application(
        &self,
        app: &Application,
        evidence: &str,
        due_at: Option<i64>,
        states: &[(&str, &str)],
        actor: &str,
        credential: Option<&IssuedCredential>,
    ) -> Result<()> {
        let now = nara_core::Timestamp::now().0;
        let mut openings = Vec::new();
        let mut entries = state_entries(app, submitted_steps(states, actor), &mut openings)?;
        if let Some(c) = credential {
            entries.push(credential_entry(c, "system")?);
        }
        let last = states.last().map_or("submitted", |s| s.0);
        let decided = nara_core::service_def::END_STATES
            .contains(&last)
            .then_some(now);
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query(
                "UPDATE applications SET state = $1, evidence = $2, submitted_at = $3, updated_at = $3, \
                 due_at = $4, decided_at = $5 WHERE id = $6 AND state = 'draft'",
            )
            .bind(last)
            .bind(evidence)
            .bind(now)
            .bind(due_at)
            .bind(decided)
            .bind(app.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::Conflict(
                    "this application was already submitted".into(),
                ));
            }
            insert_events!(
                tx,
                app.id,
                submitted_steps(states, actor).map(|(to, by, why)| (to, by, now, why))
            );
            notify!(tx, app.id, now, "state");
            if let Some(c) = credential {
                insert_credential!(tx, c, app.id);
            }
            crate::ledger::record_openings!(tx, &openings);
            crate::ledger::append_in_tx!(tx, self.kind() == crate::BackendKind::Sqlite, &entries);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Stores and submits applications made whole in one request each (the
    /// API): every row, its events, notifications and ledger entries in one
    /// transaction — the group commit hands it whatever is waiting.
    pub async fn insert_submitted(&self, batch: &[NewSubmission]) -> Result<Vec<Application>> {
        let mut entries = Vec::new();
        let mut openings = Vec::new();
        for s in batch {
            entries.extend(state_entries(
                &s.app,
                submitted_steps(&s.states, &s.actor),
                &mut openings,
            )?);
            if let Some(c) = &s.credential {
                entries.push(credential_entry(c, "system")?);
            }
        }
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let mut stored_all = Vec::with_capacity(batch.len());
            for s in batch {
                let now = s.app.created_at;
                // Made, updated and submitted in this one request.
                let row = Application {
                    updated_at: now,
                    submitted_at: Some(now),
                    assigned_to: None,
                    ..s.app.clone()
                };
                let stored = insert_whole!(tx, &row);
                insert_events!(
                    tx,
                    stored.id,
                    submitted_steps(&s.states, &s.actor).map(|(to, by, why)| (to, by, now, why))
                );
                notify!(tx, stored.id, now, "state");
                if let Some(c) = &s.credential {
                    insert_credential!(tx, c, stored.id);
                }
                stored_all.push(stored);
            }
            crate::ledger::record_openings!(tx, &openings);
            crate::ledger::append_in_tx!(tx, self.kind() == crate::BackendKind::Sqlite, &entries);
            tx.commit().await?;
            stored_all
        }))
    }

    /// Writes applications with their past in one transaction: each row as
    /// it stands, every step an event at its own time and a ledger entry, a
    /// line in the applicant's inbox for the last step, the rating with its
    /// entry. The ledger records them now, as written; the rows keep their
    /// times, so statistics, queues and timelines show the year they describe.
    pub async fn insert_history(&self, batch: &[PastApplication]) -> Result<()> {
        let mut entries = Vec::new();
        let mut openings = Vec::new();
        for p in batch {
            let steps = p.steps.iter();
            entries.extend(state_entries(
                &p.app,
                steps.map(|s| (s.to.as_str(), s.actor.as_str(), s.reason.as_str())),
                &mut openings,
            )?);
            if let Some((score, _)) = p.rating {
                let applicant = format!("account:{}", p.app.account_id);
                entries.push(rated_entry(&p.app, score, &applicant, &mut openings)?);
            }
        }
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            for p in batch {
                let a = &p.app;
                let stored = insert_whole!(tx, a);
                insert_events!(
                    tx,
                    stored.id,
                    p.steps.iter().map(|s| (
                        s.to.as_str(),
                        s.actor.as_str(),
                        s.at,
                        s.reason.as_str()
                    ))
                );
                notify!(tx, stored.id, a.updated_at, "state");
                for u in &p.uploads {
                    insert_upload!(tx, stored.id, u);
                }
                if let Some((score, at)) = p.rating {
                    sqlx::query(
                        "INSERT INTO ratings (application_id, service_code, score, comment, rated_at) \
                         VALUES ($1, $2, $3, '', $4)",
                    )
                    .bind(stored.id)
                    .bind(&a.service_code)
                    .bind(score)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            crate::ledger::record_openings!(tx, &openings);
            crate::ledger::append_in_tx!(tx, self.kind() == crate::BackendKind::Sqlite, &entries);
            tx.commit().await?;
        });
        Ok(())
    }

    /// An agency's open applications (not drafts, not decided), oldest due
    /// first; optionally of one service.
    pub async fn queue(&self, agency: &str, service: Option<&str>) -> Result<Vec<Application>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM applications WHERE agency_id = $1 AND state <> 'draft' \
             AND decided_at IS NULL AND ($2 IS NULL OR service_code = $2) \
             ORDER BY due_at IS NULL, due_at, id LIMIT 500"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(agency)
            .bind(service)
            .fetch_all(pool)
            .await?))
    }

    /// An official's action: from `from` (it must still be there) to `to`,
    /// with a reason code and text; claims it for `official` too. An event
    /// and a ledger entry (reason code only) in one transaction.
    pub async fn act_on_application(
        &self,
        app: &Application,
        to: &str,
        by: i64,
        reason: &str,
        note: &str,
        credential: Option<&IssuedCredential>,
    ) -> Result<()> {
        let now = nara_core::Timestamp::now().0;
        let actor = format!("account:{by}");
        // An official who acts holds the case; the citizen answering does not.
        let assignee = (by != app.account_id).then_some(by);
        let mut openings = Vec::new();
        let named = crate::ledger::public_actor(&actor, app.account_id, &mut openings);
        let entry = entry_bytes(
            "application.state",
            &named,
            vec![
                format!("application:{}", app.reference),
                format!("service:{}/{}", app.service_code, app.version),
            ],
            &Recorded {
                reference: &app.reference,
                service: &app.service_code,
                version: app.version,
                from: &app.state,
                to,
                reason,
            },
        )?;
        let decided = nara_core::service_def::END_STATES
            .contains(&to)
            .then_some(now);
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query(
                "UPDATE applications SET state = $1, updated_at = $2, decided_at = $3, \
                 assigned_to = COALESCE($4, assigned_to) WHERE id = $5 AND state = $6",
            )
            .bind(to)
            .bind(now)
            .bind(decided)
            .bind(assignee)
            .bind(app.id)
            .bind(&app.state)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::Conflict(
                    "someone acted on this application first".into(),
                ));
            }
            sqlx::query(
                "INSERT INTO application_events (application_id, at, actor, from_state, to_state, reason, note) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(app.id)
            .bind(now)
            .bind(&actor)
            .bind(&app.state)
            .bind(to)
            .bind(reason)
            .bind(note)
            .execute(&mut *tx)
            .await?;
            if by != app.account_id {
                notify!(tx, app.id, now, "state");
            }
            let mut entries = vec![entry];
            if let Some(c) = credential {
                insert_credential!(tx, c, app.id);
                entries.push(credential_entry(c, &actor)?);
            }
            crate::ledger::record_openings!(tx, &openings);
            crate::ledger::append_in_tx!(tx, self.kind() == crate::BackendKind::Sqlite, &entries);
            tx.commit().await?;
        });
        Ok(())
    }
}

impl Store {
    /// Gives a case to an official of its agency (or back to the pool with
    /// `None`), as a ledger entry; refused if the case moved meanwhile.
    pub async fn assign_application(
        &self,
        app: &Application,
        assignee: Option<i64>,
        actor: &str,
    ) -> Result<()> {
        #[derive(Serialize)]
        struct Assigned<'a> {
            reference: &'a str,
            assignee: Option<String>,
        }
        let entry = entry_bytes(
            "application.assigned",
            actor,
            vec![format!("application:{}", app.reference)],
            &Assigned {
                reference: &app.reference,
                assignee: assignee.map(|a| format!("account:{a}")),
            },
        )?;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query(
                "UPDATE applications SET assigned_to = $1 WHERE id = $2 AND state = $3",
            )
            .bind(assignee)
            .bind(app.id)
            .bind(&app.state)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::Conflict(
                    "someone acted on this application first".into(),
                ));
            }
            crate::ledger::commit_with_entry!(self, tx, entry);
        });
        Ok(())
    }
}

/// A verifiable credential as issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct IssuedCredential {
    pub id: String,
    pub application_id: i64,
    pub agency_id: String,
    pub credential_type: String,
    pub jwt: String,
    pub issued_at: i64,
    pub revoked_at: Option<i64>,
    /// The credential's position in its agency's Bitstring Status List.
    pub status_index: Option<i64>,
}

const CREDENTIAL_COLUMNS: &str =
    "id, application_id, agency_id, credential_type, jwt, issued_at, revoked_at, status_index";

impl Store {
    /// Stores an issued credential; a ledger entry naming its id and type
    /// (the token itself holds personal data and stays private).
    pub async fn credentials_of_application(
        &self,
        application_id: i64,
    ) -> Result<Vec<IssuedCredential>> {
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE application_id = $1 ORDER BY issued_at"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(application_id)
            .fetch_all(pool)
            .await?))
    }

    pub async fn credential(&self, id: &str) -> Result<Option<IssuedCredential>> {
        let sql = format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = $1");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?))
    }

    /// Whether a status list position of the agency is still free.
    pub async fn status_index_free(&self, agency: &str, index: i64) -> Result<bool> {
        let taken: Option<(String,)> = with_pool!(self, |pool| sqlx::query_as(
            "SELECT id FROM credentials WHERE agency_id = $1 AND status_index = $2"
        )
        .bind(agency)
        .bind(index)
        .fetch_optional(pool)
        .await?);
        Ok(taken.is_none())
    }

    /// The revoked positions of one of the agency's status lists
    /// (`from..to`), for publishing the list.
    pub async fn revoked_positions(&self, agency: &str, from: i64, to: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = with_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT status_index FROM credentials WHERE agency_id = $1 AND revoked_at IS NOT NULL \
             AND status_index >= $2 AND status_index < $3"
        )
        .bind(agency)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?
        });
        Ok(rows.into_iter().map(|(i,)| i).collect())
    }

    /// Revokes a credential for good, with the reason, as a ledger entry;
    /// a credential already revoked is a conflict.
    pub async fn revoke_credential(
        &self,
        id: &str,
        agency: &str,
        actor: &str,
        reason: &str,
    ) -> Result<()> {
        #[derive(Serialize)]
        struct Revoked<'a> {
            id: &'a str,
            reason: &'a str,
        }
        let entry = entry_bytes(
            "credential.revoked",
            actor,
            vec![format!("credential:{id}"), format!("agency:{agency}")],
            &Revoked { id, reason },
        )?;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let done = sqlx::query(
                "UPDATE credentials SET revoked_at = $1 WHERE id = $2 AND agency_id = $3 \
                 AND revoked_at IS NULL",
            )
            .bind(nara_core::Timestamp::now().0)
            .bind(id)
            .bind(agency)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(crate::StoreError::Conflict(
                    "this document is already revoked".into(),
                ));
            }
            crate::ledger::commit_with_entry!(self, tx, entry);
        });
        Ok(())
    }
}

/// A file attached to an application's file field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Upload {
    pub application_id: i64,
    pub field: String,
    /// `sha256:` + hex: the file's content address.
    pub hash: String,
    /// As read from the content, never from the name.
    pub media_type: String,
    pub size: i64,
    /// `clean`, or `not_scanned` where ClamAV is not installed.
    pub scan: String,
    pub uploaded_at: i64,
}

impl Store {
    /// Attaches a stored file to a field of the account's draft: the upload's
    /// record and the draft's answers (`answers`, with the field set to the
    /// content address) in one transaction; false if it is not their draft.
    pub async fn attach_upload(&self, u: &Upload, account_id: i64, answers: &str) -> Result<bool> {
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query(
                "UPDATE applications SET answers = $1, updated_at = $2 \
                 WHERE id = $3 AND account_id = $4 AND state = 'draft'",
            )
            .bind(answers)
            .bind(u.uploaded_at)
            .bind(u.application_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                insert_upload!(tx, u.application_id, u);
                tx.commit().await?;
            }
            n == 1
        }))
    }

    pub async fn uploads_of(&self, application_id: i64) -> Result<Vec<Upload>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT application_id, field, hash, media_type, size, scan, uploaded_at FROM uploads \
             WHERE application_id = $1 ORDER BY field"
        )
        .bind(application_id)
        .fetch_all(pool)
        .await?))
    }
}

/// A line in a citizen's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Notification {
    pub id: i64,
    pub reference: String,
    pub service_code: String,
    pub at: i64,
    /// `state` (the application reached `state`) or `document` (issued).
    pub kind: String,
    pub state: String,
    pub read_at: Option<i64>,
}

impl Store {
    /// The account's notifications, newest first (the latest 100).
    pub async fn notifications_of(&self, account_id: i64) -> Result<Vec<Notification>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT n.id, a.reference, a.service_code, n.at, n.kind, n.state, n.read_at \
             FROM notifications n JOIN applications a ON a.id = n.application_id \
             WHERE n.account_id = $1 ORDER BY n.id DESC LIMIT 100"
        )
        .bind(account_id)
        .fetch_all(pool)
        .await?))
    }

    pub async fn unread_notifications(&self, account_id: i64) -> Result<i64> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE account_id = $1 AND read_at IS NULL"
        )
        .bind(account_id)
        .fetch_one(pool)
        .await?))
    }

    /// Marks the account's notifications read; how many were unread.
    pub async fn mark_notifications_read(&self, account_id: i64) -> Result<u64> {
        Ok(with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let n = sqlx::query(
                "UPDATE notifications SET read_at = $1 WHERE account_id = $2 AND read_at IS NULL",
            )
            .bind(nara_core::Timestamp::now().0)
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            n
        }))
    }
}

/// A notification waiting to be emailed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Unsent {
    pub id: i64,
    pub email: String,
    pub reference: String,
    pub service_code: String,
    pub kind: String,
    pub state: String,
}

impl Store {
    /// Sets (or clears) the address notifications are emailed to; what is
    /// already in the inbox is not sent.
    pub async fn set_email(&self, account_id: i64, email: Option<&str>) -> Result<()> {
        let now = nara_core::Timestamp::now().0;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query("UPDATE accounts SET email = $1 WHERE id = $2")
                .bind(email)
                .bind(account_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE notifications SET emailed_at = $1 WHERE account_id = $2 AND emailed_at IS NULL",
            )
            .bind(now)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn email_of(&self, account_id: i64) -> Result<Option<String>> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT email FROM accounts WHERE id = $1"
        )
        .bind(account_id)
        .fetch_optional(pool)
        .await?)
        .flatten())
    }

    /// Notifications to email, oldest first.
    pub async fn unsent_notifications(&self, limit: i64) -> Result<Vec<Unsent>> {
        Ok(with_pool!(self, |pool| sqlx::query_as(
            "SELECT n.id, acc.email, a.reference, a.service_code, n.kind, n.state \
             FROM notifications n JOIN accounts acc ON acc.id = n.account_id \
             JOIN applications a ON a.id = n.application_id \
             WHERE n.emailed_at IS NULL AND acc.email IS NOT NULL ORDER BY n.id LIMIT $1"
        )
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }

    pub async fn mark_emailed(&self, id: i64) -> Result<()> {
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query("UPDATE notifications SET emailed_at = $1 WHERE id = $2")
                .bind(nara_core::Timestamp::now().0)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}

/// A service's figures: what the public statistics show.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceFigures {
    pub service_code: String,
    /// Submitted (not drafts).
    pub applications: u64,
    pub decided: u64,
    /// Submission to decision, decided ones, in hours.
    pub median_hours: Option<f64>,
    pub p90_hours: Option<f64>,
    /// Decided by the due date (automatic services: at once), of those decided.
    pub within_sla: u64,
    pub ratings: u64,
    /// Rated 4 or 5.
    pub satisfied: u64,
    pub mean_score: Option<f64>,
}

impl ServiceFigures {
    pub fn sla_share(&self) -> Option<f64> {
        (self.decided > 0).then(|| self.within_sla as f64 / self.decided as f64)
    }

    pub fn satisfied_share(&self) -> Option<f64> {
        (self.ratings > 0).then(|| self.satisfied as f64 / self.ratings as f64)
    }
}

/// The ledger entry of a rating: the service and the score, never the
/// comment; the applicant named by a fresh commitment.
fn rated_entry(
    app: &Application,
    score: i64,
    actor: &str,
    openings: &mut Vec<crate::ledger::Opening>,
) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Rated<'a> {
        reference: &'a str,
        service: &'a str,
        score: i64,
    }
    let named = crate::ledger::public_actor(actor, app.account_id, openings);
    entry_bytes(
        "application.rated",
        &named,
        vec![
            format!("application:{}", app.reference),
            format!("service:{}", app.service_code),
        ],
        &Rated {
            reference: &app.reference,
            service: &app.service_code,
            score,
        },
    )
}

/// (service, submitted, decided, due) of one application.
type Timing = (String, Option<i64>, Option<i64>, Option<i64>);

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[i64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64)
}

impl Store {
    /// The applicant rates a decided application of theirs, once; a ledger
    /// entry records the service and the score (never the comment).
    pub async fn rate_application(
        &self,
        app: &Application,
        score: i64,
        comment: &str,
        actor: &str,
    ) -> Result<()> {
        if !(1..=5).contains(&score) {
            return Err(StoreError::Invalid(nara_core::Invalid::one(
                "score",
                "from 1 to 5",
            )));
        }
        if app.decided_at.is_none() {
            return Err(StoreError::Conflict(
                "an application can be rated once it is decided".into(),
            ));
        }
        let mut openings = Vec::new();
        let entry = rated_entry(app, score, actor, &mut openings)?;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query(
                "INSERT INTO ratings (application_id, service_code, score, comment, rated_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(app.id)
            .bind(&app.service_code)
            .bind(score)
            .bind(comment)
            .bind(nara_core::Timestamp::now().0)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::constraint_error(e, "a rating of this application"))?;
            crate::ledger::record_openings!(tx, &openings);
            crate::ledger::commit_with_entry!(self, tx, entry);
        });
        Ok(())
    }

    /// The score the applicant gave, if any.
    pub async fn rating_of(&self, application_id: i64) -> Result<Option<i64>> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT CAST(score AS BIGINT) FROM ratings WHERE application_id = $1"
        )
        .bind(application_id)
        .fetch_optional(pool)
        .await?))
    }

    /// Every service's figures (or one service's), computed from the
    /// applications and ratings.
    pub async fn service_figures(&self, only: Option<&str>) -> Result<Vec<ServiceFigures>> {
        let filter = if only.is_some() {
            "AND service_code = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT service_code, submitted_at, decided_at, due_at FROM applications \
             WHERE state <> 'draft' {filter}"
        );
        let apps: Vec<Timing> = with_pool!(self, |pool| {
            let q = sqlx::query_as(&sql);
            match only {
                Some(code) => q.bind(code),
                None => q,
            }
            .fetch_all(pool)
            .await?
        });
        let sql =
            format!("SELECT service_code, CAST(score AS BIGINT) FROM ratings WHERE 1 = 1 {filter}");
        let scores: Vec<(String, i64)> = with_pool!(self, |pool| {
            let q = sqlx::query_as(&sql);
            match only {
                Some(code) => q.bind(code),
                None => q,
            }
            .fetch_all(pool)
            .await?
        });
        let mut by: std::collections::BTreeMap<String, (ServiceFigures, Vec<i64>, i64)> =
            std::collections::BTreeMap::new();
        for (code, submitted, decided, due) in apps {
            let (f, times, _) = by.entry(code.clone()).or_default();
            f.service_code = code;
            f.applications += 1;
            if let (Some(s), Some(d)) = (submitted, decided) {
                f.decided += 1;
                times.push(d - s);
                if due.is_none_or(|due| d <= due) {
                    f.within_sla += 1;
                }
            }
        }
        for (code, score) in scores {
            let (f, _, total) = by.entry(code.clone()).or_default();
            f.service_code = code;
            f.ratings += 1;
            *total += score;
            if score >= 4 {
                f.satisfied += 1;
            }
        }
        Ok(by
            .into_values()
            .map(|(mut f, mut times, total)| {
                times.sort_unstable();
                let hours = |ms: f64| ms / 3_600_000.0;
                f.median_hours = quantile(&times, 0.5).map(hours);
                f.p90_hours = quantile(&times, 0.9).map(hours);
                f.mean_score = (f.ratings > 0).then(|| total as f64 / f.ratings as f64);
                f
            })
            .collect())
    }
}

#[cfg(test)]
mod figures_tests {
    use super::quantile;

    #[test]
    fn nearest_rank_quantiles() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.9), Some(7.0));
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(quantile(&v, 0.5), Some(5.0));
        assert_eq!(quantile(&v, 0.9), Some(9.0));
        assert_eq!(quantile(&v, 1.0), Some(10.0));
    }
}
