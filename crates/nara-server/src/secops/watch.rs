//! What the platform's own defences report to detection, beside sign-in
//! failures and refusals: an official opening a citizen's record
//! (`personal_data.read`) and an agency system's key signing from an
//! address (`machine.key_used`, once per key and address every ten
//! minutes, so the busiest exchange adds a handful of events, not one a
//! call). The starter rules count them: one official reading unusually
//! many records, one key used from two places.

use std::net::IpAddr;
use std::sync::Mutex;

use crate::AppState;
use crate::recent::Recent;

/// A key seen from an address is reported again after this long.
const SIGHTING_MS: i64 = 10 * 60 * 1000;
/// Pairs remembered at most; older ones go first when full.
const SIGHTINGS_KEPT: usize = 100_000;

/// The (key, address) pairs reported lately.
#[derive(Debug)]
pub struct KeySightings {
    seen: Mutex<Recent<(String, IpAddr)>>,
}

impl Default for KeySightings {
    fn default() -> Self {
        KeySightings {
            seen: Mutex::new(Recent::new(SIGHTING_MS)),
        }
    }
}

impl KeySightings {
    /// Whether `key_id` signing from `address` at `now_ms` is news: not
    /// reported in the last ten minutes.
    pub fn is_news(&self, key_id: &str, address: IpAddr, now_ms: i64) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let expired = seen.turn(now_ms);
        let pair = (key_id.to_owned(), address);
        let news = !seen.seen(&pair, now_ms);
        // Full of recent pairs: report rather than forget (a missed
        // sighting could hide a stolen key).
        if news && seen.len() < SIGHTINGS_KEPT {
            seen.insert(pair, now_ms);
        }
        drop(seen);
        expired.drop_later();
        news
    }
}

/// An agency system's key signed a request (`parts`, from its client's
/// address behind any trusted proxy): reported when the pair is news, off
/// the request.
pub fn key_used(
    state: &AppState,
    parts: &axum::http::request::Parts,
    caller: &crate::identity::machine::MachineCaller,
) {
    let Some(peer) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    else {
        return;
    };
    let address = crate::identity::request::client_ip(
        peer.0.ip(),
        &parts.headers,
        &state.config.trusted_proxies,
    );
    let (key_id, client) = (caller.key_id.as_str(), caller.client_id());
    if !state
        .key_sightings
        .is_news(key_id, address, nara_core::Timestamp::now().0)
    {
        return;
    }
    let (state, key_id) = (state.clone(), key_id.to_owned());
    tokio::spawn(async move {
        crate::identity::request::event(
            &state,
            "machine.key_used",
            None,
            &key_id,
            &address.to_string(),
            &client,
        )
        .await;
    });
}

/// An official opened a citizen's record (`what`: the case and the part).
pub async fn personal_data_read(
    state: &AppState,
    who: &crate::identity::auth::Principal,
    address: &str,
    what: &str,
) {
    crate::identity::request::event(
        state,
        "personal_data.read",
        Some(who.account_id),
        &who.username,
        address,
        what,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_address_is_news_once_every_ten_minutes() {
        let s = KeySightings::default();
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        );
        assert!(s.is_news("k1", a, 0));
        assert!(!s.is_news("k1", a, 60_000));
        assert!(s.is_news("k1", b, 60_000), "another address is news");
        assert!(s.is_news("k2", a, 60_000), "another key is news");
        assert!(s.is_news("k1", a, SIGHTING_MS + 1));
    }
}
