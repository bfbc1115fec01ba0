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
use nara_core::{
    Agency, MemberId, Page, PageRequest, Service, ServiceFilter, System, SystemFilter,
};

/// A row with the lower-cased text a search matches against.
struct Indexed<T> {
    item: T,
    text: String,
}

/// Some rows of a table, in id order, with their search texts laid end to
/// end (separated by NUL, which no search text or needle contains), so that
/// a search is one SIMD scan of contiguous memory rather than a walk over
/// thousands of scattered rows.
#[derive(Default)]
struct Segment {
    rows: Vec<usize>,
    text: Vec<u8>,
    starts: Vec<usize>,
}

impl Segment {
    fn push(&mut self, position: usize, text: &str) {
        self.rows.push(position);
        self.starts.push(self.text.len());
        self.text.extend_from_slice(text.as_bytes());
        self.text.push(0);
    }

    /// Positions of the rows whose text contains the needle (all without one), in id order.
    fn matching<'a>(&'a self, needle: &'a Needle) -> Box<dyn Iterator<Item = usize> + 'a> {
        match &needle.0 {
            None => Box::new(self.rows.iter().copied()),
            Some(finder) => {
                let mut last = usize::MAX;
                Box::new(finder.find_iter(&self.text).filter_map(move |hit| {
                    let k = self.starts.partition_point(|&start| start <= hit) - 1;
                    // Several hits in one row count once.
                    (k != last).then(|| {
                        last = k;
                        self.rows[k]
                    })
                }))
            }
        }
    }
}

/// Rows sorted by id, searchable as a whole or one agency at a time.
struct Table<T> {
    rows: Vec<Indexed<T>>,
    all: Segment,
    by_agency: HashMap<MemberId, Segment>,
}

impl<T: Clone> Table<T> {
    fn new(
        mut rows: Vec<Indexed<T>>,
        id: impl Fn(&T) -> i64,
        agency: impl Fn(&T) -> &MemberId,
    ) -> Self {
        rows.sort_by_key(|r| id(&r.item));
        let mut all = Segment::default();
        let mut by_agency: HashMap<MemberId, Segment> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            all.push(i, &r.text);
            by_agency
                .entry(agency(&r.item).clone())
                .or_default()
                .push(i, &r.text);
        }
        Table {
            rows,
            all,
            by_agency,
        }
    }

    /// The rows of one agency (or all) whose text contains the needle, in id order.
    fn candidates<'a>(
        &'a self,
        agency: Option<&MemberId>,
        needle: &'a Needle,
    ) -> Box<dyn Iterator<Item = &'a T> + 'a> {
        let segment = match agency {
            Some(a) => match self.by_agency.get(a) {
                Some(segment) => segment,
                None => return Box::new(std::iter::empty()),
            },
            None => &self.all,
        };
        Box::new(segment.matching(needle).map(|i| &self.rows[i].item))
    }

    fn page(
        &self,
        agency: Option<&MemberId>,
        needle: &Needle,
        keep: impl Fn(&T) -> bool,
        page: PageRequest,
    ) -> Page<T> {
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let size = page.per_page as usize;
        let mut total = 0usize;
        let mut items = Vec::with_capacity(size);
        for row in self.candidates(agency, needle).filter(|r| keep(r)) {
            if total >= offset && items.len() < size {
                items.push(row.clone());
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

/// A search needle, compiled once per query (memchr's SIMD substring search).
struct Needle(Option<memchr::memmem::Finder<'static>>);

impl Needle {
    fn new(q: Option<&SearchText>) -> Self {
        Needle(
            q.filter(|q| !q.as_str().is_empty())
                .map(|q| memchr::memmem::Finder::new(q.as_str().as_bytes()).into_owned()),
        )
    }
}

/// One consistent copy of the catalogue, as of `version`.
pub(crate) struct Snapshot {
    pub version: i64,
    /// The local write counter when loading began; see [`Cache::fresh`].
    writes_seen: u64,
    /// Every agency, in id order (tens of them).
    pub agencies: Vec<Agency>,
    systems: Table<System>,
    services: Table<Service>,
}

impl Snapshot {
    pub fn new(
        version: i64,
        agencies: Vec<Agency>,
        systems: Vec<(System, String)>,
        services: Vec<(Service, String)>,
    ) -> Self {
        Snapshot {
            version,
            writes_seen: 0,
            agencies,
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

    fn system_matches(f: &SystemFilter, s: &System) -> bool {
        let d = &s.details;
        f.grade.is_none_or(|g| d.grade == g)
            && f.kind.is_none_or(|k| d.kind == k)
            && f.status.is_none_or(|s| d.status == s)
    }

    pub fn list_systems(&self, f: &SystemFilter, page: PageRequest) -> Page<System> {
        let needle = Needle::new(f.q.as_ref());
        self.systems.page(
            f.agency.as_ref(),
            &needle,
            |s| Self::system_matches(f, s),
            page,
        )
    }

    pub fn count_systems_by_grade(&self, f: &SystemFilter) -> [u64; 4] {
        let f = SystemFilter {
            grade: None,
            ..f.clone()
        };
        let needle = Needle::new(f.q.as_ref());
        let mut counts = [0u64; 4];
        for s in self
            .systems
            .candidates(f.agency.as_ref(), &needle)
            .filter(|s| Self::system_matches(&f, s))
        {
            counts[usize::from(s.details.grade.get() - 1)] += 1;
        }
        counts
    }

    pub fn list_services(&self, f: &ServiceFilter, page: PageRequest) -> Page<Service> {
        let needle = Needle::new(f.q.as_ref());
        let keep = |s: &Service| {
            f.audience.is_none_or(|a| s.details.audience == a)
                && f.status.is_none_or(|st| s.details.status == st)
        };
        self.services.page(f.agency.as_ref(), &needle, keep, page)
    }
}

/// The read model's state, shared by every clone of a [`crate::Store`].
#[derive(Default)]
pub(crate) struct Cache {
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Local catalogue writes so far; bumped after each commit.
    writes: AtomicU64,
    enabled: AtomicBool,
    /// A background reload is scheduled and has not yet started loading.
    reload_pending: AtomicBool,
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

    /// Claims the right to schedule a reload; false if one is already
    /// scheduled (it will see this write, as it reads the counter later).
    pub fn schedule_reload(&self) -> bool {
        !self.reload_pending.swap(true, Ordering::AcqRel)
    }

    /// Called by the scheduled reload just before it reads the write counter.
    pub fn reload_started(&self) {
        self.reload_pending.store(false, Ordering::Release);
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
