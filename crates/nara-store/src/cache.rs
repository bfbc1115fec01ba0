//! The catalogue's read model: an in-memory copy of every system and service,
//! so that searching 45,000 systems is a scan of memory, not of the database.
//!
//! Consistency: a node sees its own writes at once (a write marks the copy
//! stale; reads go to the database until a background reload finishes), and
//! other nodes' writes within about a second (a poller compares the
//! `catalogue_version` row, which every write bumps in its own transaction).
//! The database stays the truth: without a fresh copy, reads use SQL, and the
//! contract tests check that both paths answer alike.
//!
//! Cost that stays flat as the catalogue grows: each segment keeps, for each
//! byte pair and triple, the rows whose text holds it, so a search verifies
//! only the rows listed under the needle's rarest triple; and a search stops counting
//! past `nara_core::count_limit`. An agency of 10,000 systems then answers a
//! search in about the time one of 100 does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nara_core::catalogue::SearchText;
use nara_core::{
    Agency, MemberId, Page, PageRequest, Service, ServiceFilter, System, SystemFilter,
    TotalRelation,
};
use serde_json::value::RawValue;

/// A row with the lower-cased text a search matches against.
struct Indexed<T> {
    item: T,
    text: String,
}

/// Some rows of a table, in id order, with their search texts laid end to
/// end (separated by NUL, which no search text or needle contains), so that
/// a search is one SIMD scan of contiguous memory rather than a walk over
/// thousands of scattered rows; and an index of the short byte sequences in
/// each row, so that most searches verify a short list of rows instead.
#[derive(Default)]
struct Segment {
    rows: Vec<usize>,
    text: Vec<u8>,
    starts: Vec<usize>,
    grams: GramMap<Postings>,
}

/// Grams are bytes of catalogue text, looked up by needles: a fast hash will do.
type GramMap<V> = HashMap<u32, V, foldhash::fast::RandomState>;

/// The rows of a segment (their index in it, ascending) whose text holds one
/// gram.
#[derive(Debug)]
enum Postings {
    Rows(RowList),
    /// Held by more than one row in [`COMMON_SHARE`]: a list that long
    /// narrows a search too little to be worth its memory.
    Common,
}

/// Ascending row numbers, each stored as its LEB128 difference from the one
/// before (the first from 0): a byte or two a row instead of four.
#[derive(Debug, Default)]
struct RowList {
    len: u32,
    last: u32,
    deltas: Vec<u8>,
}

impl RowList {
    fn push(&mut self, row: u32) {
        let mut delta = row - self.last;
        while delta >= 0x80 {
            self.deltas.push((delta as u8) | 0x80);
            delta >>= 7;
        }
        self.deltas.push(delta as u8);
        self.last = row;
        self.len += 1;
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let mut bytes = self.deltas.iter();
        let mut row = 0u32;
        std::iter::from_fn(move || {
            let (mut delta, mut shift) = (0u32, 0);
            loop {
                let b = *bytes.next()?;
                delta |= u32::from(b & 0x7f) << shift;
                if b < 0x80 {
                    break;
                }
                shift += 7;
            }
            row += delta;
            Some(row)
        })
    }
}

/// A gram held by more than one row in this many is not listed.
const COMMON_SHARE: usize = 4;

/// A needle's grams are its byte triples; a two-byte needle is its own
/// pair. Triples narrow far better than pairs in text of three languages
/// (in the services of one agency at 10×, "certificate"'s rarest pair is in
/// twice the rows its rarest triple is in, the matches themselves).
fn gram(w: &[u8]) -> u32 {
    match *w {
        [a, b] => u32::from_be_bytes([0, 0, a, b]),
        [a, b, c] => u32::from_be_bytes([1, a, b, c]),
        _ => unreachable!("grams are two or three bytes"),
    }
}

/// The grams a needle is looked up by (none for one byte: a scan).
fn needle_grams(needle: &[u8]) -> std::slice::Windows<'_, u8> {
    needle.windows(if needle.len() == 2 { 2 } else { 3 })
}

impl Segment {
    fn push(&mut self, position: usize, text: &str) {
        self.rows.push(position);
        self.starts.push(self.text.len());
        self.text.extend_from_slice(text.as_bytes());
        self.text.push(0);
    }

    /// Lists each gram's rows, once every row is in, in one pass; then
    /// forgets the lists of common grams. The lists are a byte or so a row
    /// while they are built, so the common ones cost little before they go.
    fn index(&mut self) {
        let mut lists: GramMap<RowList> = GramMap::default();
        let mut held = Vec::new();
        for k in 0..self.starts.len() {
            self.grams_of(k, &mut held);
            for &g in &held {
                // A segment's rows fit in u32 (a catalogue holds millions, not billions).
                lists.entry(g).or_default().push(k as u32);
            }
        }
        let common = (self.rows.len() / COMMON_SHARE).max(1);
        self.grams = lists
            .into_iter()
            .map(|(g, mut rows)| {
                let postings = if rows.len as usize > common {
                    Postings::Common
                } else {
                    rows.deltas.shrink_to_fit();
                    Postings::Rows(rows)
                };
                (g, postings)
            })
            .collect();
    }

    /// The distinct grams of row `k`, into `held`.
    fn grams_of(&self, k: usize, held: &mut Vec<u32>) {
        let text = self.row_text(k);
        held.clear();
        held.extend(text.windows(2).chain(text.windows(3)).map(gram));
        held.sort_unstable();
        held.dedup();
    }

    /// Row `k`'s search text, without its separator.
    fn row_text(&self, k: usize) -> &[u8] {
        let end = self.starts.get(k + 1).copied().unwrap_or(self.text.len()) - 1;
        &self.text[self.starts[k]..end]
    }

    /// The shortest list of rows that may hold the needle: empty when one of
    /// its grams is in no row; `None` when every gram is common (or the
    /// needle is one byte), and only a scan will do.
    fn narrowest(&self, needle: &[u8]) -> Option<&RowList> {
        static NONE: RowList = RowList {
            len: 0,
            last: 0,
            deltas: Vec::new(),
        };
        let mut best: Option<&RowList> = None;
        for w in needle_grams(needle) {
            match self.grams.get(&gram(w)) {
                None => return Some(&NONE),
                Some(Postings::Common) => {}
                Some(Postings::Rows(rows)) => {
                    if best.is_none_or(|b| rows.len < b.len) {
                        best = Some(rows);
                    }
                }
            }
        }
        best
    }

    /// Positions of the rows whose text contains the needle (all without one), in id order.
    fn matching<'a>(&'a self, needle: &'a Needle) -> Box<dyn Iterator<Item = usize> + 'a> {
        let Some(finder) = &needle.0 else {
            return Box::new(self.rows.iter().copied());
        };
        if let Some(candidates) = self.narrowest(finder.needle()) {
            return Box::new(
                candidates
                    .iter()
                    .map(|k| k as usize)
                    .filter(move |&k| finder.find(self.row_text(k)).is_some())
                    .map(move |k| self.rows[k]),
            );
        }
        // A scan from row to row: after a hit, the search resumes at the
        // next row's start (several hits in one row count once), and the
        // hit's row is found by walking forward from the last one, a step or
        // two for the common words that come here (a binary search over
        // every row's start for each hit was a tenth of a system search's
        // cost at 10×).
        let mut next_row = 0;
        Box::new(std::iter::from_fn(move || {
            let from = *self.starts.get(next_row)?;
            let hit = from + finder.find(&self.text[from..])?;
            let mut k = next_row;
            while self.starts.get(k + 1).is_some_and(|&start| start <= hit) {
                k += 1;
            }
            next_row = k + 1;
            Some(self.rows[k])
        }))
    }
}

/// Rows sorted by id, searchable as a whole or one agency at a time.
struct Table<T> {
    rows: Vec<Indexed<T>>,
    all: Segment,
    by_agency: HashMap<MemberId, Segment>,
}

impl<T> Table<T> {
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
        // Two cores: all the rows on one, the agencies' on another.
        std::thread::scope(|scope| {
            scope.spawn(|| all.index());
            for segment in by_agency.values_mut() {
                segment.index();
            }
        });
        Table {
            rows,
            all,
            by_agency,
        }
    }

    /// The positions in `rows` of one agency's rows (or all) whose text
    /// contains the needle, in id order.
    fn positions<'a>(
        &'a self,
        agency: Option<&MemberId>,
        needle: &'a Needle,
    ) -> Box<dyn Iterator<Item = usize> + 'a> {
        let segment = match agency {
            Some(a) => match self.by_agency.get(a) {
                Some(segment) => segment,
                None => return Box::new(std::iter::empty()),
            },
            None => &self.all,
        };
        segment.matching(needle)
    }

    /// The rows of one agency (or all) whose text contains the needle, in id order.
    fn candidates<'a>(
        &'a self,
        agency: Option<&MemberId>,
        needle: &'a Needle,
    ) -> Box<dyn Iterator<Item = &'a T> + 'a> {
        Box::new(self.positions(agency, needle).map(|i| &self.rows[i].item))
    }

    /// A page of the rows that match, each given by `pick` (from its
    /// position in `rows`): a clone, a reference or bytes kept beside it.
    fn page<R>(
        &self,
        agency: Option<&MemberId>,
        needle: &Needle,
        keep: impl Fn(&T) -> bool,
        limit: Option<u64>,
        page: PageRequest,
        pick: impl Fn(usize) -> R,
    ) -> Page<R> {
        let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let size = page.per_page as usize;
        let mut total = 0u64;
        let mut total_relation = TotalRelation::Eq;
        let mut items = Vec::with_capacity(size);
        for i in self
            .positions(agency, needle)
            .filter(|&i| keep(&self.rows[i].item))
        {
            if limit.is_some_and(|limit| total >= limit) {
                // One match past the limit: the total is a lower bound.
                total_relation = TotalRelation::Gte;
                break;
            }
            if total as usize >= offset && items.len() < size {
                items.push(pick(i));
            }
            total += 1;
        }
        Page {
            items,
            total,
            total_relation,
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
    /// Each service (as `services.rows` orders them) as the API writes it:
    /// a search answers with these bytes rather than cloning and
    /// serialising each service again. At ten times the nation an agency's
    /// search answers 18 services where it answered half of one at a tenth,
    /// and that per-row work made its cost grow 2.2×. Some 15 MB at 10×;
    /// none if a service would not serialise (then pages are built as before).
    services_json: Option<Vec<Box<RawValue>>>,
}

impl Snapshot {
    pub fn new(
        version: i64,
        agencies: Vec<Agency>,
        systems: Vec<(System, String)>,
        services: Vec<(Service, String)>,
    ) -> Self {
        let services = Table::new(
            services
                .into_iter()
                .map(|(item, text)| Indexed { item, text })
                .collect(),
            |s| s.id,
            |s| &s.details.agency,
        );
        let services_json = services
            .rows
            .iter()
            .map(|r| serde_json::value::to_raw_value(&r.item))
            .collect::<Result<Vec<_>, _>>()
            .ok();
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
            services,
            services_json,
        }
    }

    fn system_matches(f: &SystemFilter, s: &System) -> bool {
        let d = &s.details;
        f.grade.is_none_or(|g| d.grade == g)
            && f.kind.is_none_or(|k| d.kind == k)
            && f.status.is_none_or(|s| d.status == s)
    }

    /// A page of the systems that match, each given by `pick` (from its
    /// position in the table).
    fn systems_page<R>(
        &self,
        f: &SystemFilter,
        page: PageRequest,
        pick: impl Fn(usize) -> R,
    ) -> Page<R> {
        let needle = Needle::new(f.q.as_ref());
        self.systems.page(
            f.agency.as_ref(),
            &needle,
            |s| Self::system_matches(f, s),
            nara_core::count_limit(f.q.as_ref(), page),
            page,
            pick,
        )
    }

    pub fn list_systems(&self, f: &SystemFilter, page: PageRequest) -> Page<System> {
        self.systems_page(f, page, |i| self.systems.rows[i].item.clone())
    }

    /// [`Snapshot::list_systems`] as the API's JSON, serialised from the
    /// rows where they are (a page of 20 systems cloned, then serialised and
    /// dropped, made a search's cost grow with its answer).
    pub fn list_systems_json(&self, f: &SystemFilter, page: PageRequest) -> Option<Vec<u8>> {
        page_bytes(&self.systems_page(f, page, |i| &self.systems.rows[i].item))
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

    fn service_matches(f: &ServiceFilter, s: &Service) -> bool {
        f.audience.is_none_or(|a| s.details.audience == a)
            && f.status.is_none_or(|st| s.details.status == st)
    }

    /// A page of the services that match, each given by `pick` (from its
    /// position in the table).
    fn services_page<R>(
        &self,
        f: &ServiceFilter,
        page: PageRequest,
        pick: impl Fn(usize) -> R,
    ) -> Page<R> {
        let needle = Needle::new(f.q.as_ref());
        self.services.page(
            f.agency.as_ref(),
            &needle,
            |s| Self::service_matches(f, s),
            nara_core::count_limit(f.q.as_ref(), page),
            page,
            pick,
        )
    }

    pub fn list_services(&self, f: &ServiceFilter, page: PageRequest) -> Page<Service> {
        self.services_page(f, page, |i| self.services.rows[i].item.clone())
    }

    /// [`Snapshot::list_services`] lending the rows where they are.
    pub fn services_lent(&self, f: &ServiceFilter, page: PageRequest) -> Page<&Service> {
        self.services_page(f, page, |i| &self.services.rows[i].item)
    }

    /// [`Snapshot::list_services`] as the API's JSON, from each service's
    /// bytes kept beside it (none if they were not kept).
    pub fn list_services_json(&self, f: &ServiceFilter, page: PageRequest) -> Option<Vec<u8>> {
        let json = self.services_json.as_ref()?;
        page_bytes(&self.services_page(f, page, |i| &*json[i]))
    }
}

/// A page as the API's JSON, into a buffer sized for it at once (grown
/// from serde_json's 128 bytes, a page of 20 systems was copied as it grew,
/// six times over).
fn page_bytes<T: serde::Serialize>(page: &Page<T>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(256 + 512 * page.items.len());
    serde_json::to_writer(&mut out, page).ok()?;
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A segment of the texts, their rows numbered 0, 3, 6… (positions in a
    /// table need not be the segment's own).
    fn segment(texts: &[String]) -> Segment {
        let mut segment = Segment::default();
        for (i, text) in texts.iter().enumerate() {
            segment.push(i * 3, text);
        }
        segment.index();
        segment
    }

    fn found(segment: &Segment, needle: &str) -> Vec<usize> {
        let q: SearchText = needle.parse().unwrap();
        segment.matching(&Needle::new(Some(&q))).collect()
    }

    fn expected(texts: &[String], needle: &str) -> Vec<usize> {
        (0..texts.len())
            .filter(|&i| texts[i].contains(needle))
            .map(|i| i * 3)
            .collect()
    }

    // Texts from a wide alphabet, so that most grams are listed, with a
    // common word, so that some are too common to list; Hangul for grams
    // inside and across multi-byte characters.
    fn texts() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("(server |[a-z0-9/:. 가나다]{1,6}){1,5}", 0..80)
    }

    proptest! {
        #[test]
        fn the_index_finds_what_a_scan_finds(texts in texts(), needle in "[a-z0-9/: 가나]{1,4}") {
            prop_assert_eq!(found(&segment(&texts), &needle), expected(&texts, &needle));
        }

        #[test]
        fn row_lists_give_back_what_went_in(mut rows in prop::collection::vec(any::<u32>(), 0..200)) {
            rows.sort_unstable();
            rows.dedup();
            let mut list = RowList::default();
            for &r in &rows {
                list.push(r);
            }
            prop_assert_eq!(list.iter().collect::<Vec<_>>(), rows.clone());
            prop_assert_eq!(list.len as usize, rows.len());
        }

        #[test]
        fn every_piece_of_a_text_is_found(texts in texts(), pick in any::<prop::sample::Index>(), from in 0usize..40, len in 1usize..12) {
            prop_assume!(!texts.is_empty());
            let text = &texts[pick.index(texts.len())];
            let chars: Vec<char> = text.chars().collect();
            let from = from % chars.len();
            let needle: String = chars[from..(from + len).min(chars.len())].iter().collect();
            let hits = found(&segment(&texts), &needle);
            prop_assert!(!hits.is_empty());
            prop_assert_eq!(hits, expected(&texts, &needle));
        }
    }

    fn listed(s: &Segment, needle: &[u8]) -> Option<Vec<u32>> {
        s.narrowest(needle).map(|rows| rows.iter().collect())
    }

    #[test]
    fn common_grams_are_not_listed_and_absent_grams_find_nothing() {
        let texts: Vec<String> = (0..100)
            .map(|i| format!("kr/gov/kcs server-{i:04} https://kcs.go.kr/"))
            .chain(["tax office".to_owned(), "taxi rank".to_owned()])
            .collect();
        let s = segment(&texts);
        assert!(matches!(s.grams.get(&gram(b"ht")), Some(Postings::Common)));
        assert!(matches!(s.grams.get(&gram(b"htt")), Some(Postings::Common)));
        assert!(
            matches!(s.grams.get(&gram(b"ta")), Some(Postings::Rows(rows)) if rows.iter().eq([100, 101]))
        );
        assert!(
            matches!(s.grams.get(&gram(b"axi")), Some(Postings::Rows(rows)) if rows.iter().eq([101]))
        );
        assert_eq!(listed(&s, b"taxi"), Some(vec![101]), "the rarest triple");
        assert_eq!(
            listed(&s, b"ta"),
            Some(vec![100, 101]),
            "a two-byte needle is its pair"
        );
        assert_eq!(listed(&s, b"https"), None, "every triple common: a scan");
        assert_eq!(listed(&s, b"t"), None, "one byte: a scan");
        assert_eq!(listed(&s, b"zq"), Some(vec![]), "a pair in no row");
        assert_eq!(
            listed(&s, b"ofi"),
            Some(vec![]),
            "a triple in no row, its pairs in some"
        );
        assert_eq!(found(&s, "https://"), expected(&texts, "https://"));
        assert_eq!(found(&s, "tax"), vec![300, 303]);
    }

    #[test]
    fn a_search_stops_counting_past_its_limit() {
        let systems = (1..=500).map(|id| {
            let text = if id % 2 == 0 { "even tax" } else { "odd" };
            (id, text.to_owned())
        });
        let table = Table::new(
            systems
                .map(|(id, text)| Indexed {
                    item: (id, MemberId::parse("KR/GOV/MOIS").unwrap()),
                    text,
                })
                .collect(),
            |r| r.0,
            |r| &r.1,
        );
        let q: SearchText = "tax".parse().unwrap();
        let needle = Needle::new(Some(&q));
        let page = PageRequest {
            page: 2,
            per_page: 10,
        };
        let capped = table.page(
            None,
            &needle,
            |_| true,
            nara_core::count_limit(Some(&q), page),
            page,
            |i| table.rows[i].item.clone(),
        );
        assert_eq!(
            (capped.total, capped.total_relation),
            (220, TotalRelation::Gte)
        );
        assert_eq!(
            capped.items.iter().map(|r| r.0).collect::<Vec<_>>(),
            (11..=20).map(|k| k * 2).collect::<Vec<_>>()
        );
        let late = PageRequest {
            page: 25,
            per_page: 10,
        };
        let exact = table.page(
            None,
            &needle,
            |_| true,
            nara_core::count_limit(Some(&q), late),
            late,
            |i| table.rows[i].item.clone(),
        );
        assert_eq!(
            (exact.total, exact.total_relation),
            (250, TotalRelation::Eq),
            "near the end every match is counted"
        );
        let everything = table.page(None, &Needle::new(None), |_| true, None, page, |i| i);
        assert_eq!(
            (everything.total, everything.total_relation),
            (500, TotalRelation::Eq)
        );
    }
}
