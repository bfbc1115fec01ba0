//! Published service definitions (`nara_core::service_def`): every version
//! kept as its TOML source, immutable once published; each publication a
//! ledger entry naming the designer.

use serde::Serialize;

use crate::ledger::{commit_with_entry, entry_bytes};
use crate::{Result, Store, StoreError, with_pool, write_tx};

/// One published version of a service definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PublishedDefinition {
    pub code: String,
    pub version: i64,
    pub agency_id: String,
    #[serde(skip)]
    pub source: String,
    pub published_by: String,
    pub published_at: i64,
}

const COLUMNS: &str = "code, version, agency_id, source, published_by, published_at";

impl Store {
    /// Publishes a version: it must be the next one (1 for a new code), and
    /// a code belongs to the agency that first published it.
    pub async fn publish_definition(&self, d: &PublishedDefinition) -> Result<()> {
        #[derive(Serialize)]
        struct Published<'a> {
            code: &'a str,
            version: i64,
            agency: &'a str,
            source_sha256: String,
        }
        let entry = entry_bytes(
            "service.definition.published",
            &d.published_by,
            vec![
                format!("service_definition:{}/{}", d.code, d.version),
                format!("agency:{}", d.agency_id),
            ],
            &Published {
                code: &d.code,
                version: d.version,
                agency: &d.agency_id,
                source_sha256: nara_ledger::entry::digest(d.source.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            },
        )?;
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let latest: Option<(i64, String)> = sqlx::query_as(
                "SELECT version, agency_id FROM service_definitions WHERE code = $1 \
                 ORDER BY version DESC LIMIT 1",
            )
            .bind(&d.code)
            .fetch_optional(&mut *tx)
            .await?;
            match &latest {
                Some((_, agency)) if agency != &d.agency_id => {
                    return Err(StoreError::Conflict(format!(
                        "the service {} belongs to {agency}",
                        d.code
                    )));
                }
                Some((v, _)) if d.version != v + 1 => {
                    return Err(StoreError::Conflict(format!(
                        "version {} of {} is published; publish version {}",
                        v,
                        d.code,
                        v + 1
                    )));
                }
                None if d.version != 1 => {
                    return Err(StoreError::Conflict(format!(
                        "{} is new: publish version 1",
                        d.code
                    )));
                }
                _ => {}
            }
            sqlx::query(&format!(
                "INSERT INTO service_definitions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            ))
            .bind(&d.code)
            .bind(d.version)
            .bind(&d.agency_id)
            .bind(&d.source)
            .bind(&d.published_by)
            .bind(d.published_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::constraint_error(e, "this version"))?;
            commit_with_entry!(self, tx, entry);
        });
        Ok(())
    }

    /// The latest version of every service.
    pub async fn latest_definitions(&self) -> Result<Vec<PublishedDefinition>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM service_definitions d WHERE version = \
             (SELECT MAX(version) FROM service_definitions e WHERE e.code = d.code) ORDER BY code"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .fetch_all(pool)
            .await?))
    }

    /// Every version of one service, newest first.
    pub async fn definition_versions(&self, code: &str) -> Result<Vec<PublishedDefinition>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM service_definitions WHERE code = $1 ORDER BY version DESC"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(code)
            .fetch_all(pool)
            .await?))
    }
}
