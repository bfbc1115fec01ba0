//! The catalogue's read model: an in-memory copy of every system and service,
//! so that searching 45,000 systems is a scan of memory, not of the database.
//!
//! Consistency: a node sees its own writes at once (a write marks the copy
//! stale; reads go to the database until a background reload finishes), and
//! other nodes' writes within about a second (a poller compares the
//! `catalogue_version` row, which every write bumps in its own transaction).
//! The database stays the truth: without a fresh copy, reads use SQL, and the
//! contract tests check that both paths answer alike.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nara_core::catalogue::SearchText;
use nara_core::{Grade, MemberId, Page, PageRequest, Service, ServiceFilter, System, SystemFilter};

/// A row with the lower-cased text a search matches against.
struct Indexed<T> {
    item: T,
    text: String,
}

/// Rows sorted by id, with the positions of each agency's rows.
struct Table<T> {
    rows: Vec<Indexed<T>>,
    by_agency: HashMap<MemberId, Vec<usize>>,
}

impl<T: Clone> Table<T> {
    fn new(
        mut rows: Vec<Indexed<T>>,
        id: impl Fn(&T) -> i64,
        agency: impl Fn(&T) -> &MemberId,
    ) -> Self {
        rows.sort_by_key(|r| id(&r.item));
        let mut by_agency: HashMap<MemberId, Vec<usize>> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            by_agency
                .entry(agency(&r.item).clone())
                .or_default()
                .push(i);
        }
        Table { rows, by_agency }
    }

    /// Positions to consider: one agency's rows, or all, in id order.
    fn candidates<'a>(
        &'a self,
        agency: Option<&MemberId>,
    ) -> Box<dyn Iterator<Item = &'a Indexed<T>> + 'a> {
        match agency {
            Some(a) => Box::new(
                self.by_agency
                    .get(a)
                    .into_iter()
                    .flatten()
                    .map(|&i| &self.rows[i]),
            ),
            None => Box::new(self.rows.iter()),
        }
    }

    fn page(
        &self,
        agency: Option<&MemberId>,
        keep: impl Fn(&Indexed<T>) -> bool,
        page: PageRequest,
    ) -> Page<T> {
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let size = page.per_page as usize;
        let mut total = 0usize;
        let mut items = Vec::with_capacity(size);
        for row in self.candidates(agency).filter(|r| keep(r)) {
            if total >= offset && items.len() < size {
                items.push(row.item.clone());
            }
            total += 1;
        }
        Page {
            items,
            total: total as u64,
            page: page.page,
            per_page: page.per_page,
        }
    }
}

fn matches(text: &str, q: Option<&SearchText>) -> bool {
    q.is_none_or(|q| text.contains(q.as_str()))
}

/// One consistent copy of the catalogue, as of `version`.
pub(crate) struct Snapshot {
    pub version: i64,
    /// The local write counter when loading began; see [`Cache::fresh`].
    writes_seen: u64,
    systems: Table<System>,
    services: Table<Service>,
}

impl Snapshot {
    pub fn new(
        version: i64,
        systems: Vec<(System, String)>,
        services: Vec<(Service, String)>,
    ) -> Self {
        Snapshot {
            version,
            writes_seen: 0,
            systems: Table::new(
                systems
                    .into_iter()
                    .map(|(item, text)| Indexed { item, text })
                    .collect(),
                |s| s.id,
                |s| &s.details.agency,
            ),
            services: Table::new(
                services
                    .into_iter()
                    .map(|(item, text)| Indexed { item, text })
                    .collect(),
                |s| s.id,
                |s| &s.details.agency,
            ),
        }
    }

    fn system_matches(f: &SystemFilter, r: &Indexed<System>) -> bool {
        let d = &r.item.details;
        f.grade.is_none_or(|g| d.grade == g)
            && f.kind.is_none_or(|k| d.kind == k)
            && f.status.is_none_or(|s| d.status == s)
            && matches(&r.text, f.q.as_ref())
    }

    pub fn list_systems(&self, f: &SystemFilter, page: PageRequest) -> Page<System> {
        self.systems
            .page(f.agency.as_ref(), |r| Self::system_matches(f, r), page)
    }

    pub fn count_systems_by_grade(&self, f: &SystemFilter) -> [u64; 4] {
        let f = SystemFilter {
            grade: None,
            ..f.clone()
        };
        let mut counts = [0u64; 4];
        for r in self
            .systems
            .candidates(f.agency.as_ref())
            .filter(|r| Self::system_matches(&f, r))
        {
            let g: Grade = r.item.details.grade;
            counts[usize::from(g.get() - 1)] += 1;
        }
        counts
    }

    pub fn list_services(&self, f: &ServiceFilter, page: PageRequest) -> Page<Service> {
        let keep = |r: &Indexed<Service>| {
            let d = &r.item.details;
            f.audience.is_none_or(|a| d.audience == a)
                && f.status.is_none_or(|s| d.status == s)
                && matches(&r.text, f.q.as_ref())
        };
        self.services.page(f.agency.as_ref(), keep, page)
    }
}

/// The read model's state, shared by every clone of a [`crate::Store`].
#[derive(Default)]
pub(crate) struct Cache {
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Local catalogue writes so far; bumped after each commit.
    writes: AtomicU64,
    enabled: AtomicBool,
    loading: tokio::sync::Mutex<()>,
}

impl Cache {
    /// The copy, if it was loaded after this node's last write.
    pub fn fresh(&self) -> Option<Arc<Snapshot>> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        let current = self.current.read().ok()?.clone()?;
        (current.writes_seen == self.writes.load(Ordering::Acquire)).then_some(current)
    }

    pub fn current_version(&self) -> Option<i64> {
        self.current.read().ok()?.as_ref().map(|s| s.version)
    }

    /// Called after a catalogue write commits: the copy is stale from now on.
    /// Returns whether a reload should be started.
    pub fn wrote(&self) -> bool {
        self.writes.fetch_add(1, Ordering::AcqRel);
        self.enabled.load(Ordering::Acquire)
    }

    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
    }

    /// The write counter to record in a snapshot, read before loading it.
    pub fn writes_before_load(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    pub fn install(&self, mut snapshot: Snapshot, writes_seen: u64) {
        snapshot.writes_seen = writes_seen;
        if let Ok(mut current) = self.current.write() {
            *current = Some(Arc::new(snapshot));
        }
    }

    pub fn loading(&self) -> &tokio::sync::Mutex<()> {
        &self.loading
    }
}

/// How often a node looks for other nodes' catalogue writes.
pub(crate) const POLL: Duration = Duration::from_secs(1);
