//! What was seen within a time window (a replayed signature, a key signing
//! from a new address), remembered at a cost that does not grow with how
//! much was seen.
//!
//! Keys are kept in two generations of one window each; when the newer is a
//! window old, the older — every key in it older than the window — is
//! dropped whole, off the async workers. One map pruned key by key once it
//! passed a size walked every key of a busy window on every call past that
//! size (the replay guard at 200,000 keys: 6% of a saturated node's CPU),
//! and anyone able to fill it could make every request pay that.

use std::collections::HashMap;
use std::hash::Hash;

/// Keys and when each was last seen, for `window_ms`.
#[derive(Debug)]
pub struct Recent<K> {
    window_ms: i64,
    current: HashMap<K, i64>,
    previous: HashMap<K, i64>,
    /// When `current` began (ms since the epoch).
    began_ms: i64,
}

/// Generations past the window, to be dropped outside any lock
/// ([`Expired::drop_later`]).
#[must_use]
pub struct Expired<K>(Option<(HashMap<K, i64>, HashMap<K, i64>)>);

impl<K: Send + 'static> Expired<K> {
    /// Frees the expired keys (millions on a busy node) on a blocking
    /// thread when a runtime runs, else here.
    pub fn drop_later(self) {
        if let Some(expired) = self.0
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn_blocking(move || drop(expired));
        }
    }
}

impl<K: Hash + Eq> Recent<K> {
    pub fn new(window_ms: i64) -> Recent<K> {
        Recent {
            window_ms,
            current: HashMap::new(),
            previous: HashMap::new(),
            began_ms: i64::MIN / 2,
        }
    }

    /// Begins a new generation if the current one is a window old; call
    /// before asking at `now_ms`.
    pub fn turn(&mut self, now_ms: i64) -> Expired<K> {
        let age = now_ms.saturating_sub(self.began_ms);
        if age < self.window_ms {
            return Expired(None);
        }
        self.began_ms = now_ms;
        let current = std::mem::take(&mut self.current);
        if age >= 2 * self.window_ms {
            // Both are past the window.
            return Expired(Some((std::mem::take(&mut self.previous), current)));
        }
        Expired(Some((
            std::mem::replace(&mut self.previous, current),
            HashMap::new(),
        )))
    }

    /// Whether `key` was seen less than a window before `now_ms`.
    pub fn seen<Q>(&self, key: &Q, now_ms: i64) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        [&self.current, &self.previous].iter().any(|g| {
            g.get(key)
                .is_some_and(|at| now_ms.saturating_sub(*at) < self.window_ms)
        })
    }

    /// Remembers `key` as seen at `now_ms`.
    pub fn insert(&mut self, key: K, now_ms: i64) {
        self.current.insert(key, now_ms);
    }

    pub fn remove<Q>(&mut self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.current.remove(key);
        self.previous.remove(key);
    }

    /// Keys held, expired ones of the older generation included.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Whatever the spacing of calls, a key is seen exactly while it was
        /// inserted less than a window before: as a map that forgets
        /// nothing would answer, however the generations turn.
        #[test]
        fn a_key_is_seen_exactly_within_the_window(
            steps in proptest::collection::vec((0i64..1_000, 0u8..6, proptest::bool::ANY), 1..300),
        ) {
            let mut recent = Recent::new(1_000);
            let mut model: HashMap<u8, i64> = HashMap::new();
            let mut now = 1_700_000_000_000i64;
            for (gap, key, insert) in steps {
                now += gap / 3;
                recent.turn(now).drop_later();
                let expected = model.get(&key).is_some_and(|at| now - at < 1_000);
                proptest::prop_assert_eq!(recent.seen(&key, now), expected);
                if insert {
                    recent.insert(key, now);
                    model.insert(key, now);
                }
            }
        }
    }

    #[test]
    fn memory_holds_two_windows_at_most() {
        let mut recent = Recent::new(1_000);
        for now in 0..10_000i64 {
            recent.turn(now).drop_later();
            recent.insert(now, now);
        }
        assert!(recent.len() <= 2_000, "{} keys held", recent.len());
    }
}
