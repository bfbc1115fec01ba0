//! Bulk loading of a sample country (the demo's, or the national scale) in
//! multi-row INSERTs, a batch per transaction. Rows already present (same id
//! or same agency and code) are left as they are, so seeding twice is safe.

use std::collections::HashMap;

use nara_core::{Service, System, Timestamp};

use crate::StoreError;
use crate::catalogue::{service_entry, system_entry};
use crate::ledger::entry_bytes;
use nara_core::seed::Country;

use crate::catalogue::{agency_search_text, service_search_text, system_search_text};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Result, Store, with_pool, write_tx};

/// What an INSERT returns to key the ledger entries of the rows it inserted.
/// The actor named in the entries of seeded rows: `nara seed`/`nara demo`.
const SEED_ACTOR: &str = "seed";
const AGENCY_KEY: &str = "CAST(0 AS BIGINT), id, id";
const ROW_KEY: &str = "id, agency_id, code";

/// Rows per INSERT: well under SQLite's 32,766 and PostgreSQL's 65,535
/// placeholders per statement with the widest table (15 columns).
const BATCH: usize = 500;

/// What a seed wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub agencies: u64,
    pub services: u64,
    pub systems: u64,
}

fn insert(
    table: &str,
    columns: &[&str],
    returning: &str,
    rows: impl Iterator<Item = Vec<Arg>>,
) -> Option<Sql> {
    let mut sql = Sql::new(&format!(
        "INSERT INTO {table} ({}) VALUES ",
        columns.join(", ")
    ));
    let mut any = false;
    for (i, row) in rows.enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        for (j, arg) in row.into_iter().enumerate() {
            if j > 0 {
                sql.push(", ");
            }
            sql.bind(arg);
        }
        sql.push(")");
        any = true;
    }
    // The inserted rows' keys come back, so each gets its ledger entry.
    sql.push(" ON CONFLICT DO NOTHING RETURNING ")
        .push(returning);
    any.then_some(sql)
}

/// The ledger entry of each row an `INSERT … RETURNING id, agency_id, code`
/// reports, found in the batch by its (agency, code) key.
fn entry_for<'a, T: Clone>(
    chunk: &'a [T],
    key: fn(&T) -> (&str, &str),
    make: impl Fn(i64, T) -> Result<Vec<u8>> + 'a,
) -> impl Fn((i64, String, String)) -> Option<Result<Vec<u8>>> + 'a {
    let by_key: HashMap<(&str, &str), &T> = chunk.iter().map(|row| (key(row), row)).collect();
    move |(id, agency, code)| {
        let row = (*by_key.get(&(agency.as_str(), code.as_str()))?).clone();
        Some(make(id, row))
    }
}

fn text(s: &str) -> Arg {
    Arg::Text(s.to_owned())
}

impl Store {
    /// Writes a sample country, calling `progress` with the number of rows
    /// written so far (out of `country.len()`).
    pub async fn seed(
        &self,
        country: &Country,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<SeedReport> {
        let now = Timestamp::now().0;
        let mut report = SeedReport::default();
        let mut done = 0u64;

        let agency_rows = country.agencies.iter().map(|a| {
            vec![
                text(a.id.as_str()),
                text(&a.name.en),
                text(&a.name.es),
                text(&a.name.ko),
                text(a.kind.as_str()),
                Arg::Text(agency_search_text(&a.id, &a.name)),
                Arg::Int(now),
                Arg::Int(now),
            ]
        });
        let columns = [
            "id",
            "name_en",
            "name_es",
            "name_ko",
            "kind",
            "search_text",
            "created_at",
            "updated_at",
        ];
        for chunk in agency_rows.collect::<Vec<_>>().chunks(BATCH) {
            report.agencies += self
                .run_batch(
                    insert("agencies", &columns, AGENCY_KEY, chunk.iter().cloned()),
                    |(_, id, _)| {
                        let a = country.agencies.iter().find(|a| a.id.as_str() == id)?;
                        let agency = nara_core::Agency {
                            id: a.id.clone(),
                            name: a.name.clone(),
                            kind: a.kind,
                            created_at: Timestamp(now),
                            updated_at: Timestamp(now),
                        };
                        Some(entry_bytes(
                            "catalogue.agency.created",
                            SEED_ACTOR,
                            vec![format!("agency:{}", a.id)],
                            &agency,
                        ))
                    },
                )
                .await?;
            done += chunk.len() as u64;
            progress(done);
        }

        let columns = [
            "agency_id",
            "code",
            "name_en",
            "name_es",
            "name_ko",
            "description_en",
            "description_es",
            "description_ko",
            "audience",
            "legal_basis",
            "channel",
            "status",
            "search_text",
            "created_at",
            "updated_at",
        ];
        for chunk in country.services.chunks(BATCH) {
            let rows = chunk.iter().map(|s| {
                vec![
                    text(s.agency.as_str()),
                    text(&s.code),
                    text(&s.name.en),
                    text(&s.name.es),
                    text(&s.name.ko),
                    text(&s.description.en),
                    text(&s.description.es),
                    text(&s.description.ko),
                    text(s.audience.as_str()),
                    text(&s.legal_basis),
                    text(s.channel.as_str()),
                    text(s.status.as_str()),
                    Arg::Text(service_search_text(s)),
                    Arg::Int(now),
                    Arg::Int(now),
                ]
            });
            let entry = entry_for(
                chunk,
                |s| (s.agency.as_str(), s.code.as_str()),
                |id, details| {
                    let service = Service {
                        id,
                        details,
                        created_at: Timestamp(now),
                        updated_at: Timestamp(now),
                    };
                    service_entry("catalogue.service.created", SEED_ACTOR, &service)
                },
            );
            report.services += self
                .run_batch(insert("services", &columns, ROW_KEY, rows), entry)
                .await?;
            done += chunk.len() as u64;
            progress(done);
        }

        let columns = [
            "agency_id",
            "code",
            "name",
            "kind",
            "grade",
            "environment",
            "endpoint_url",
            "status",
            "search_text",
            "created_at",
            "updated_at",
        ];
        for chunk in country.systems.chunks(BATCH) {
            let rows = chunk.iter().map(|s| {
                vec![
                    text(s.agency.as_str()),
                    text(&s.code),
                    text(&s.name),
                    text(s.kind.as_str()),
                    Arg::Int(i64::from(s.grade.get())),
                    text(s.environment.as_str()),
                    Arg::OptText(s.endpoint_url.clone()),
                    text(s.status.as_str()),
                    Arg::Text(system_search_text(s)),
                    Arg::Int(now),
                    Arg::Int(now),
                ]
            });
            let entry = entry_for(
                chunk,
                |s| (s.agency.as_str(), s.code.as_str()),
                |id, details| {
                    let system = System {
                        id,
                        details,
                        created_at: Timestamp(now),
                        updated_at: Timestamp(now),
                    };
                    system_entry("catalogue.system.created", SEED_ACTOR, &system)
                },
            );
            report.systems += self
                .run_batch(insert("systems", &columns, ROW_KEY, rows), entry)
                .await?;
            done += chunk.len() as u64;
            progress(done);
        }
        self.after_catalogue_write();
        Ok(report)
    }

    /// Runs one multi-row INSERT … RETURNING and appends a ledger entry for
    /// each row it inserted, in the same transaction.
    async fn run_batch(
        &self,
        sql: Option<Sql>,
        entry: impl Fn((i64, String, String)) -> Option<Result<Vec<u8>>>,
    ) -> Result<u64> {
        let Some(sql) = sql else { return Ok(0) };
        let sqlite = self.kind() == crate::BackendKind::Sqlite;
        let inserted = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let rows: Vec<(i64, String, String)> = bind_args!(crate::sql::query_as(&sql), sql)
                .fetch_all(&mut *tx)
                .await?;
            let n = rows.len() as u64;
            let entries = rows
                .into_iter()
                .map(|r| {
                    entry(r).unwrap_or_else(|| {
                        Err(StoreError::Corrupt("a seeded row came back unknown".into()))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            crate::ledger::append_in_tx!(tx, sqlite, &entries);
            sqlx::query(crate::catalogue::BUMP_VERSION)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        Ok(inserted)
    }

    /// True when no agency is registered yet (a new database).
    pub async fn is_empty(&self) -> Result<bool> {
        let n: i64 = with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM agencies"
        )
        .fetch_one(pool)
        .await?);
        Ok(n == 0)
    }
}
