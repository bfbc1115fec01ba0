//! The catalogue's tables: agencies, systems and services.

use nara_core::{
    Agency, AgencyChanges, AgencyFilter, Localized, MemberId, NewAgency, Page, PageRequest,
    Service, ServiceFilter, ServiceInput, System, SystemFilter, SystemInput, Timestamp,
};

use crate::ledger::entry_bytes;
use crate::sql::{Arg, Sql, bind_args, contains_pattern};
use crate::{Result, Store, StoreError, constraint_error, parse_column, with_pool, write_tx};

#[derive(sqlx::FromRow)]
struct AgencyRow {
    id: String,
    name_en: String,
    name_es: String,
    name_ko: String,
    kind: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<AgencyRow> for Agency {
    type Error = StoreError;
    fn try_from(r: AgencyRow) -> Result<Self> {
        Ok(Agency {
            id: parse_column(&r.id, "agencies.id")?,
            name: Localized {
                en: r.name_en,
                es: r.name_es,
                ko: r.name_ko,
            },
            kind: parse_column(&r.kind, "agencies.kind")?,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct SystemRow {
    id: i64,
    agency_id: String,
    code: String,
    name: String,
    kind: String,
    grade: i32,
    environment: String,
    endpoint_url: Option<String>,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<SystemRow> for System {
    type Error = StoreError;
    fn try_from(r: SystemRow) -> Result<Self> {
        Ok(System {
            id: r.id,
            details: SystemInput {
                agency: parse_column(&r.agency_id, "systems.agency_id")?,
                code: r.code,
                name: r.name,
                kind: parse_column(&r.kind, "systems.kind")?,
                grade: nara_core::Grade::new(i64::from(r.grade))
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                environment: parse_column(&r.environment, "systems.environment")?,
                endpoint_url: r.endpoint_url,
                status: parse_column(&r.status, "systems.status")?,
            },
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct ServiceRow {
    id: i64,
    agency_id: String,
    code: String,
    name_en: String,
    name_es: String,
    name_ko: String,
    description_en: String,
    description_es: String,
    description_ko: String,
    audience: String,
    legal_basis: String,
    channel: String,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ServiceRow> for Service {
    type Error = StoreError;
    fn try_from(r: ServiceRow) -> Result<Self> {
        Ok(Service {
            id: r.id,
            details: ServiceInput {
                agency: parse_column(&r.agency_id, "services.agency_id")?,
                code: r.code,
                name: Localized {
                    en: r.name_en,
                    es: r.name_es,
                    ko: r.name_ko,
                },
                description: Localized {
                    en: r.description_en,
                    es: r.description_es,
                    ko: r.description_ko,
                },
                audience: parse_column(&r.audience, "services.audience")?,
                legal_basis: r.legal_basis,
                channel: parse_column(&r.channel, "services.channel")?,
                status: parse_column(&r.status, "services.status")?,
            },
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

/// Finishes a catalogue change inside its transaction: bumps the catalogue
/// version, appends the change's ledger entry, commits. One step, so no path
/// commits a change without its entry (DESIGN.md invariant 2).
macro_rules! commit_change {
    ($store:ident, $tx:ident, $entry:expr) => {{
        sqlx::query(BUMP_VERSION).execute(&mut *$tx).await?;
        crate::ledger::commit_with_entry!($store, $tx, $entry);
    }};
}

pub(crate) fn system_entry(kind: &str, actor: &str, s: &System) -> Result<Vec<u8>> {
    entry_bytes(
        kind,
        actor,
        vec![
            format!("system:{}", s.id),
            format!("agency:{}", s.details.agency),
        ],
        s,
    )
}

pub(crate) fn service_entry(kind: &str, actor: &str, s: &Service) -> Result<Vec<u8>> {
    entry_bytes(
        kind,
        actor,
        vec![
            format!("service:{}", s.id),
            format!("agency:{}", s.details.agency),
        ],
        s,
    )
}

/// Every write to the catalogue bumps the catalogue's version in its own
/// transaction, so other nodes' read models notice (see `cache`).
pub(crate) const BUMP_VERSION: &str =
    "UPDATE catalogue_version SET version = version + 1 WHERE id = 1";

const AGENCY_COLUMNS: &str = "id, name_en, name_es, name_ko, kind, created_at, updated_at";
const SYSTEM_COLUMNS: &str = "id, agency_id, code, name, kind, grade, environment, endpoint_url, status, created_at, updated_at";
const SERVICE_COLUMNS: &str = "id, agency_id, code, name_en, name_es, name_ko, description_en, description_es, description_ko, audience, legal_basis, channel, status, created_at, updated_at";

// What a search matches, lower-cased once at write time.
pub(crate) fn agency_search_text(id: &MemberId, name: &Localized) -> String {
    format!("{id} {} {} {}", name.en, name.es, name.ko).to_lowercase()
}

pub(crate) fn system_search_text(s: &SystemInput) -> String {
    format!(
        "{} {} {} {}",
        s.agency,
        s.code,
        s.name,
        s.endpoint_url.as_deref().unwrap_or("")
    )
    .to_lowercase()
}

pub(crate) fn service_search_text(s: &ServiceInput) -> String {
    format!(
        "{} {} {} {} {} {} {} {} {}",
        s.agency,
        s.code,
        s.name.en,
        s.name.es,
        s.name.ko,
        s.description.en,
        s.description.es,
        s.description.ko,
        s.legal_basis
    )
    .to_lowercase()
}

fn search_condition(sql: &mut Sql, q: Option<&nara_core::catalogue::SearchText>) {
    if let Some(q) = q.filter(|q| !q.as_str().is_empty()) {
        sql.and()
            .push("search_text LIKE ")
            .bind(Arg::Text(contains_pattern(q.as_str())))
            .push(" ESCAPE '\\'");
    }
}

fn equals(sql: &mut Sql, column: &str, value: Option<String>) {
    if let Some(v) = value {
        sql.and().push(column).push(" = ").bind(Arg::Text(v));
    }
}

fn agency_conditions(sql: &mut Sql, f: &AgencyFilter) {
    equals(sql, "kind", f.kind.map(|k| k.as_str().to_owned()));
    search_condition(sql, f.q.as_ref());
}

fn system_conditions(sql: &mut Sql, f: &SystemFilter) {
    equals(sql, "agency_id", f.agency.as_ref().map(ToString::to_string));
    if let Some(g) = f.grade {
        sql.and()
            .push("grade = ")
            .bind(Arg::Int(i64::from(g.get())));
    }
    equals(sql, "kind", f.kind.map(|k| k.as_str().to_owned()));
    equals(sql, "status", f.status.map(|k| k.as_str().to_owned()));
    search_condition(sql, f.q.as_ref());
}

fn service_conditions(sql: &mut Sql, f: &ServiceFilter) {
    equals(sql, "agency_id", f.agency.as_ref().map(ToString::to_string));
    equals(sql, "audience", f.audience.map(|k| k.as_str().to_owned()));
    equals(sql, "status", f.status.map(|k| k.as_str().to_owned()));
    search_condition(sql, f.q.as_ref());
}

/// Counts and figures the home and agency pages show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogueStats {
    pub agencies: u64,
    pub services: u64,
    pub systems: u64,
    /// Systems per grade, index 0 = grade 1.
    pub systems_by_grade: [u64; 4],
}

/// Runs a filtered, paged list: one COUNT and one page of rows. A text
/// search counts at most one match past its limit (`nara_core::count_limit`).
macro_rules! list_page {
    ($store:expr, $table:literal, $columns:expr, $row:ty, $conditions:expr, $q:expr, $page:expr) => {{
        let page: PageRequest = $page;
        let limit = nara_core::count_limit($q, page);
        let mut count = Sql::new(match limit {
            Some(_) => concat!("SELECT COUNT(*) FROM (SELECT 1 FROM ", $table),
            None => concat!("SELECT COUNT(*) FROM ", $table),
        });
        $conditions(&mut count);
        if let Some(limit) = limit {
            count
                .push(" LIMIT ")
                .bind(Arg::Int(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
            count.push(") AS matches");
        }
        let mut select = Sql::new(&format!("SELECT {} FROM {}", $columns, $table));
        $conditions(&mut select);
        select
            .push(" ORDER BY id LIMIT ")
            .bind(Arg::Int(i64::from(page.per_page)));
        select.push(" OFFSET ").bind(Arg::Int(page.offset()));
        let (total, rows): (i64, Vec<$row>) = with_pool!($store, |pool| {
            let total = bind_args!(crate::sql::query_scalar(&count), count)
                .fetch_one(pool)
                .await?;
            let rows = bind_args!(crate::sql::query_as(&select), select)
                .fetch_all(pool)
                .await?;
            (total, rows)
        });
        let total = total.max(0) as u64;
        let (total, total_relation) = match limit {
            Some(limit) if total > limit => (limit, nara_core::TotalRelation::Gte),
            _ => (total, nara_core::TotalRelation::Eq),
        };
        Ok(Page {
            items: rows
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<Vec<_>>>()?,
            total,
            total_relation,
            page: page.page,
            per_page: page.per_page,
        })
    }};
}

impl Store {
    // ------------------------------------------------------------ agencies

    pub async fn list_agencies(
        &self,
        filter: &AgencyFilter,
        page: PageRequest,
    ) -> Result<Page<Agency>> {
        list_page!(
            self,
            "agencies",
            AGENCY_COLUMNS,
            AgencyRow,
            |s: &mut Sql| agency_conditions(s, filter),
            filter.q.as_ref(),
            page
        )
    }

    /// Every agency, for filters and menus (there are tens, not thousands).
    pub async fn all_agencies(&self) -> Result<Vec<Agency>> {
        if let Some(snapshot) = self.cache.fresh() {
            return Ok(snapshot.agencies.clone());
        }
        let sql = format!("SELECT {AGENCY_COLUMNS} FROM agencies ORDER BY id");
        let rows: Vec<AgencyRow> =
            with_pool!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn get_agency(&self, id: &MemberId) -> Result<Option<Agency>> {
        let sql = format!("SELECT {AGENCY_COLUMNS} FROM agencies WHERE id = $1");
        let row: Option<AgencyRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    pub async fn create_agency(&self, new: &NewAgency, actor: &str) -> Result<Agency> {
        new.validate()?;
        let now = Timestamp::now();
        let agency = Agency {
            id: new.id.clone(),
            name: new.name.clone(),
            kind: new.kind,
            created_at: now,
            updated_at: now,
        };
        let entry = entry_bytes(
            "catalogue.agency.created",
            actor,
            vec![format!("agency:{}", agency.id)],
            &agency,
        )?;
        let sql = "INSERT INTO agencies (id, name_en, name_es, name_ko, kind, search_text, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";
        with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            sqlx::query(sql)
                .bind(new.id.as_str())
                .bind(&new.name.en)
                .bind(&new.name.es)
                .bind(&new.name.ko)
                .bind(new.kind.as_str())
                .bind(agency_search_text(&new.id, &new.name))
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| constraint_error(e, &format!("agency {}", new.id)))?;
            commit_change!(self, tx, entry);
        });
        self.after_catalogue_write();
        Ok(agency)
    }

    pub async fn update_agency(
        &self,
        id: &MemberId,
        changes: &AgencyChanges,
        actor: &str,
    ) -> Result<Agency> {
        changes.validate()?;
        let now = Timestamp::now();
        let sql = "UPDATE agencies SET name_en = $2, name_es = $3, name_ko = $4, kind = $5, search_text = $6, updated_at = $7 \
                   WHERE id = $1 RETURNING created_at";
        let agency: Agency = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let created: Option<i64> = sqlx::query_scalar(sql)
                .bind(id.as_str())
                .bind(&changes.name.en)
                .bind(&changes.name.es)
                .bind(&changes.name.ko)
                .bind(changes.kind.as_str())
                .bind(agency_search_text(id, &changes.name))
                .bind(now.0)
                .fetch_optional(&mut *tx)
                .await?;
            let created = created.ok_or_else(|| StoreError::NotFound(format!("agency {id}")))?;
            let agency = Agency {
                id: id.clone(),
                name: changes.name.clone(),
                kind: changes.kind,
                created_at: Timestamp(created),
                updated_at: now,
            };
            commit_change!(
                self,
                tx,
                entry_bytes(
                    "catalogue.agency.updated",
                    actor,
                    vec![format!("agency:{id}")],
                    &agency
                )?
            );
            agency
        });
        self.after_catalogue_write();
        Ok(agency)
    }

    // ------------------------------------------------------------ systems

    pub async fn list_systems(
        &self,
        filter: &SystemFilter,
        page: PageRequest,
    ) -> Result<Page<System>> {
        if let Some(snapshot) = self.cache.fresh() {
            return Ok(snapshot.list_systems(filter, page));
        }
        list_page!(
            self,
            "systems",
            SYSTEM_COLUMNS,
            SystemRow,
            |s: &mut Sql| system_conditions(s, filter),
            filter.q.as_ref(),
            page
        )
    }

    pub async fn get_system(&self, id: i64) -> Result<Option<System>> {
        let sql = format!("SELECT {SYSTEM_COLUMNS} FROM systems WHERE id = $1");
        let row: Option<SystemRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    pub async fn create_system(&self, input: &SystemInput, actor: &str) -> Result<System> {
        input.validate()?;
        let now = Timestamp::now();
        let sql = "INSERT INTO systems (agency_id, code, name, kind, grade, environment, endpoint_url, status, search_text, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id";
        let system: System = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let id: i64 = bind_system(sqlx::query_scalar(sql), input)
                .bind(now.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    constraint_error(e, &format!("system {} of {}", input.code, input.agency))
                })?;
            let system = System {
                id,
                details: input.clone(),
                created_at: now,
                updated_at: now,
            };
            commit_change!(
                self,
                tx,
                system_entry("catalogue.system.created", actor, &system)?
            );
            system
        });
        self.after_catalogue_write();
        Ok(system)
    }

    pub async fn update_system(&self, id: i64, input: &SystemInput, actor: &str) -> Result<System> {
        input.validate()?;
        let now = Timestamp::now();
        let sql = "UPDATE systems SET agency_id = $1, code = $2, name = $3, kind = $4, grade = $5, environment = $6, \
                   endpoint_url = $7, status = $8, search_text = $9, updated_at = $10 WHERE id = $11 RETURNING created_at";
        let system: System = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            // What was probed at another address says nothing of this one:
            // its health is unknown until the next round probes it.
            sqlx::query(
                "DELETE FROM system_health WHERE system_id = $1 AND EXISTS \
                 (SELECT 1 FROM systems WHERE id = $1 AND endpoint_url IS DISTINCT FROM $2)",
            )
            .bind(id)
            .bind(&input.endpoint_url)
            .execute(&mut *tx)
            .await?;
            let created: Option<i64> = bind_system(sqlx::query_scalar(sql), input)
                .bind(now.0)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| {
                    constraint_error(e, &format!("system {} of {}", input.code, input.agency))
                })?;
            let created = created.ok_or_else(|| StoreError::NotFound(format!("system {id}")))?;
            let system = System {
                id,
                details: input.clone(),
                created_at: Timestamp(created),
                updated_at: now,
            };
            commit_change!(
                self,
                tx,
                system_entry("catalogue.system.updated", actor, &system)?
            );
            system
        });
        self.after_catalogue_write();
        Ok(system)
    }

    // ------------------------------------------------------------ services

    pub async fn list_services(
        &self,
        filter: &ServiceFilter,
        page: PageRequest,
    ) -> Result<Page<Service>> {
        if let Some(snapshot) = self.cache.fresh() {
            return Ok(snapshot.list_services(filter, page));
        }
        list_page!(
            self,
            "services",
            SERVICE_COLUMNS,
            ServiceRow,
            |s: &mut Sql| service_conditions(s, filter),
            filter.q.as_ref(),
            page
        )
    }

    /// A page of services and every agency, lent to `view` (a page's
    /// renderer): from the read model's rows where they are while it is
    /// fresh, else read from the database: a page no longer clones its 20
    /// services and every agency only to drop them once rendered.
    pub async fn view_services<R>(
        &self,
        filter: &ServiceFilter,
        page: PageRequest,
        view: impl FnOnce(&[Agency], Page<&Service>) -> R,
    ) -> Result<R> {
        if let Some(snapshot) = self.cache.fresh() {
            return Ok(view(
                &snapshot.agencies,
                snapshot.services_lent(filter, page),
            ));
        }
        let agencies = self.all_agencies().await?;
        let page = self.list_services(filter, page).await?;
        Ok(view(&agencies, page.as_refs()))
    }

    /// [`Store::list_services`] as the API's JSON (`Page<Service>`): from the
    /// read model's bytes for each service when it is fresh, else serialised.
    pub async fn list_services_json(
        &self,
        filter: &ServiceFilter,
        page: PageRequest,
    ) -> Result<Vec<u8>> {
        self.page_json(
            |snapshot| snapshot.list_services_json(filter, page),
            self.list_services(filter, page),
        )
        .await
    }

    /// [`Store::list_systems`] as the API's JSON (`Page<System>`),
    /// serialised from the read model's rows when it is fresh.
    pub async fn list_systems_json(
        &self,
        filter: &SystemFilter,
        page: PageRequest,
    ) -> Result<Vec<u8>> {
        self.page_json(
            |snapshot| snapshot.list_systems_json(filter, page),
            self.list_systems(filter, page),
        )
        .await
    }

    /// A page as the API's JSON: written by the read model while it is
    /// fresh (`cached`), else the page the database gives, serialised.
    async fn page_json<T: serde::Serialize>(
        &self,
        cached: impl FnOnce(&crate::cache::Snapshot) -> Option<Vec<u8>>,
        from_database: impl std::future::Future<Output = Result<Page<T>>>,
    ) -> Result<Vec<u8>> {
        if let Some(json) = self.cache.fresh().and_then(|snapshot| cached(&snapshot)) {
            return Ok(json);
        }
        let page = from_database.await?;
        serde_json::to_vec(&page).map_err(|e| StoreError::Corrupt(format!("a page: {e}")))
    }

    pub async fn get_service(&self, id: i64) -> Result<Option<Service>> {
        let sql = format!("SELECT {SERVICE_COLUMNS} FROM services WHERE id = $1");
        let row: Option<ServiceRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.map(TryInto::try_into).transpose()
    }

    pub async fn create_service(&self, input: &ServiceInput, actor: &str) -> Result<Service> {
        input.validate()?;
        let now = Timestamp::now();
        let sql = "INSERT INTO services (agency_id, code, name_en, name_es, name_ko, description_en, description_es, description_ko, \
                   audience, legal_basis, channel, status, search_text, created_at, updated_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING id";
        let service: Service = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let id: i64 = bind_service(sqlx::query_scalar(sql), input)
                .bind(now.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    constraint_error(e, &format!("service {} of {}", input.code, input.agency))
                })?;
            let service = Service {
                id,
                details: input.clone(),
                created_at: now,
                updated_at: now,
            };
            commit_change!(
                self,
                tx,
                service_entry("catalogue.service.created", actor, &service)?
            );
            service
        });
        self.after_catalogue_write();
        Ok(service)
    }

    pub async fn update_service(
        &self,
        id: i64,
        input: &ServiceInput,
        actor: &str,
    ) -> Result<Service> {
        input.validate()?;
        let now = Timestamp::now();
        let sql = "UPDATE services SET agency_id = $1, code = $2, name_en = $3, name_es = $4, name_ko = $5, description_en = $6, \
                   description_es = $7, description_ko = $8, audience = $9, legal_basis = $10, channel = $11, status = $12, \
                   search_text = $13, updated_at = $14 WHERE id = $15 RETURNING created_at";
        let service: Service = with_pool!(self, |pool| {
            let (_turn, mut tx) = write_tx!(self, pool);
            let created: Option<i64> = bind_service(sqlx::query_scalar(sql), input)
                .bind(now.0)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| {
                    constraint_error(e, &format!("service {} of {}", input.code, input.agency))
                })?;
            let created = created.ok_or_else(|| StoreError::NotFound(format!("service {id}")))?;
            let service = Service {
                id,
                details: input.clone(),
                created_at: Timestamp(created),
                updated_at: now,
            };
            commit_change!(
                self,
                tx,
                service_entry("catalogue.service.updated", actor, &service)?
            );
            service
        });
        self.after_catalogue_write();
        Ok(service)
    }

    // ------------------------------------------------------------ figures

    /// Counts for the whole country, or for one agency.
    pub async fn catalogue_stats(&self, agency: Option<&MemberId>) -> Result<CatalogueStats> {
        let owner = agency.map(|a| a.as_str().to_owned());
        let counts_sql = "SELECT \
            (SELECT COUNT(*) FROM agencies WHERE $1 IS NULL OR id = $1), \
            (SELECT COUNT(*) FROM services WHERE $1 IS NULL OR agency_id = $1)";
        let (agencies, services): (i64, i64) = with_pool!(self, |pool| sqlx::query_as(counts_sql)
            .bind(owner.as_deref())
            .fetch_one(pool)
            .await?);
        let filter = SystemFilter {
            agency: agency.cloned(),
            ..Default::default()
        };
        let systems_by_grade = self.count_systems_by_grade(&filter).await?;
        Ok(CatalogueStats {
            agencies: agencies.max(0) as u64,
            services: services.max(0) as u64,
            systems: systems_by_grade.iter().sum(),
            systems_by_grade,
        })
    }

    /// How many systems of each grade match a filter (its grade is ignored, so
    /// a chart can show every grade beside the selected one). Index 0 = grade 1.
    pub async fn count_systems_by_grade(&self, filter: &SystemFilter) -> Result<[u64; 4]> {
        if let Some(snapshot) = self.cache.fresh() {
            return Ok(snapshot.count_systems_by_grade(filter));
        }
        let filter = SystemFilter {
            grade: None,
            ..filter.clone()
        };
        let mut sql = Sql::new("SELECT grade, COUNT(*) FROM systems");
        system_conditions(&mut sql, &filter);
        sql.push(" GROUP BY grade");
        let rows: Vec<(i32, i64)> =
            with_pool!(self, |pool| bind_args!(crate::sql::query_as(&sql), sql)
                .fetch_all(pool)
                .await?);
        let mut counts = [0u64; 4];
        for (grade, n) in rows {
            if let Some(slot) = usize::try_from(grade - 1)
                .ok()
                .and_then(|i| counts.get_mut(i))
            {
                *slot = n.max(0) as u64;
            }
        }
        Ok(counts)
    }
}

#[derive(sqlx::FromRow)]
struct SystemWithText {
    #[sqlx(flatten)]
    row: SystemRow,
    search_text: String,
}

#[derive(sqlx::FromRow)]
struct ServiceWithText {
    #[sqlx(flatten)]
    row: ServiceRow,
    search_text: String,
}

impl Store {
    /// Loads every agency, system and service, as of one consistent moment.
    async fn load_snapshot(&self) -> Result<crate::cache::Snapshot> {
        let systems_sql = format!("SELECT {SYSTEM_COLUMNS}, search_text FROM systems");
        let services_sql = format!("SELECT {SERVICE_COLUMNS}, search_text FROM services");
        let agencies_sql = format!("SELECT {AGENCY_COLUMNS} FROM agencies ORDER BY id");
        let postgres = self.kind() == crate::BackendKind::Postgres;
        let (version, systems, services, agencies): (
            i64,
            Vec<SystemWithText>,
            Vec<ServiceWithText>,
            Vec<AgencyRow>,
        ) = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            if postgres {
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *tx)
                    .await?;
            }
            let version = sqlx::query_scalar(VERSION).fetch_one(&mut *tx).await?;
            let systems = sqlx::query_as(&systems_sql).fetch_all(&mut *tx).await?;
            let services = sqlx::query_as(&services_sql).fetch_all(&mut *tx).await?;
            let agencies = sqlx::query_as(&agencies_sql).fetch_all(&mut *tx).await?;
            tx.commit().await?;
            (version, systems, services, agencies)
        });
        let systems = systems
            .into_iter()
            .map(|r| Ok((System::try_from(r.row)?, r.search_text)))
            .collect::<Result<Vec<_>>>()?;
        let services = services
            .into_iter()
            .map(|r| Ok((Service::try_from(r.row)?, r.search_text)))
            .collect::<Result<Vec<_>>>()?;
        let agencies = agencies
            .into_iter()
            .map(Agency::try_from)
            .collect::<Result<Vec<_>>>()?;
        // Indexing 450,000 systems takes a while: off the async workers.
        let (rows, started) = (systems.len() + services.len(), std::time::Instant::now());
        let snapshot = tokio::task::spawn_blocking(move || {
            crate::cache::Snapshot::new(version, agencies, systems, services)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("building the catalogue's read model: {e}")))?;
        tracing::info!(
            version,
            rows,
            index_ms = started.elapsed().as_millis() as u64,
            "catalogue read model built"
        );
        Ok(snapshot)
    }

    /// Reloads the read model unless the one in place is fresh and current.
    pub async fn reload_catalogue(&self) -> Result<()> {
        let _one_at_a_time = self.cache.loading().lock().await;
        if self.cache.fresh().is_some()
            && Some(self.catalogue_version().await?) == self.cache.current_version()
        {
            return Ok(());
        }
        let writes = self.cache.writes_before_load();
        let snapshot = self.load_snapshot().await?;
        self.cache.install(snapshot, writes);
        Ok(())
    }

    async fn catalogue_version(&self) -> Result<i64> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(VERSION)
            .fetch_one(pool)
            .await?))
    }

    /// Serves catalogue reads from memory from now on: loads the read model,
    /// then keeps it current in the background (see `cache`).
    pub async fn enable_catalogue_cache(&self) -> Result<()> {
        self.cache.enable();
        self.reload_catalogue().await?;
        let store = self.clone();
        tokio::spawn(async move {
            while !store.is_closed() {
                tokio::time::sleep(crate::cache::POLL).await;
                let changed = match store.catalogue_version().await {
                    Ok(v) => Some(v) != store.cache.current_version(),
                    Err(_) => false,
                };
                if changed && let Err(e) = store.reload_catalogue().await {
                    tracing::warn!(error = %e, "reloading the catalogue read model failed");
                }
            }
        });
        Ok(())
    }

    /// After a local write: the read model is stale; reload it in the
    /// background. A burst of writes schedules one reload, not one each.
    pub(crate) fn after_catalogue_write(&self) {
        if self.cache.wrote() && self.cache.schedule_reload() {
            let store = self.clone();
            tokio::spawn(async move {
                // Let a burst of writes finish before paying for a reload.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                store.cache.reload_started();
                if let Err(e) = store.reload_catalogue().await {
                    tracing::warn!(error = %e, "reloading the catalogue read model failed");
                }
            });
        }
    }
}

const VERSION: &str = "SELECT version FROM catalogue_version WHERE id = 1";

/// Binds a system's nine stored fields, in column order, to `$1`–`$9`.
fn bind_system<'q, Q: BindService<'q> + BindInt<'q>>(q: Q, s: &'q SystemInput) -> Q {
    q.bind_text(s.agency.as_str())
        .bind_text(&s.code)
        .bind_text(&s.name)
        .bind_text(s.kind.as_str())
        .bind_int(i32::from(s.grade.get()))
        .bind_text(s.environment.as_str())
        .bind_opt_text(s.endpoint_url.as_deref())
        .bind_text(s.status.as_str())
        .bind_owned(system_search_text(s))
}

/// Binds a service's thirteen stored fields, in column order, to `$1`–`$13`.
fn bind_service<'q, Q: BindService<'q>>(q: Q, s: &'q ServiceInput) -> Q {
    q.bind_text(s.agency.as_str())
        .bind_text(&s.code)
        .bind_text(&s.name.en)
        .bind_text(&s.name.es)
        .bind_text(&s.name.ko)
        .bind_text(&s.description.en)
        .bind_text(&s.description.es)
        .bind_text(&s.description.ko)
        .bind_text(s.audience.as_str())
        .bind_text(&s.legal_basis)
        .bind_text(s.channel.as_str())
        .bind_text(s.status.as_str())
        .bind_owned(service_search_text(s))
}

/// The bind calls `bind_service` and `bind_system` need, for any backend's scalar query.
trait BindService<'q>: Sized {
    fn bind_text(self, v: &'q str) -> Self;
    fn bind_opt_text(self, v: Option<&'q str>) -> Self;
    fn bind_owned(self, v: String) -> Self;
}

trait BindInt<'q>: Sized {
    fn bind_int(self, v: i32) -> Self;
}

impl<'q, DB, O> BindService<'q>
    for sqlx::query::QueryScalar<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    fn bind_text(self, v: &'q str) -> Self {
        self.bind(v)
    }
    fn bind_opt_text(self, v: Option<&'q str>) -> Self {
        self.bind(v)
    }
    fn bind_owned(self, v: String) -> Self {
        self.bind(v)
    }
}

impl<'q, DB, O> BindInt<'q>
    for sqlx::query::QueryScalar<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    fn bind_int(self, v: i32) -> Self {
        self.bind(v)
    }
}
