//! The national alert level and what it sets: the per-address limit on
//! every public route. Analysts set the level with a reason (a ledger
//! entry); every node reads it back within two seconds, so a cluster
//! tightens together.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use governor::clock::{Clock, DefaultClock};
use nara_core::secops::AlertLevel;
use serde::Deserialize;

use crate::AppState;
use crate::problem::Problem;
use crate::web::csrf::CsrfForm;
use crate::web::{Layout, PageCtx, PageError, render, store_failed, when};

type Limiter = governor::DefaultKeyedRateLimiter<IpAddr>;

/// The level now, and a per-address limiter for each level (so a change
/// of level takes effect on the next request, with the new quota).
pub struct Posture {
    level: AtomicU8,
    /// Requests a minute per address at normal; 0: no limit.
    normal_per_minute: u32,
    limiters: Vec<Limiter>,
    /// One "limited" security event per address a minute, not one per
    /// refused request: a flood must not become a flood of events.
    reported: Limiter,
}

impl Posture {
    pub fn new(normal_per_minute: u32) -> Posture {
        let quota = |n: u32| {
            let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
            // A page load is several requests at once (page, style, script):
            // a quarter of the minute's allowance may come in one burst.
            let burst = NonZeroU32::new(n.get().div_ceil(4)).unwrap_or(NonZeroU32::MIN);
            governor::Quota::per_minute(n).allow_burst(burst)
        };
        Posture {
            level: AtomicU8::new(0),
            normal_per_minute,
            limiters: AlertLevel::ALL
                .iter()
                .map(|l| {
                    governor::RateLimiter::keyed(quota(l.per_address_limit(normal_per_minute)))
                })
                .collect(),
            reported: governor::RateLimiter::keyed(governor::Quota::per_minute(NonZeroU32::MIN)),
        }
    }

    pub fn level(&self) -> AlertLevel {
        AlertLevel::from_rank(self.level.load(Ordering::Relaxed))
    }

    pub fn set(&self, level: AlertLevel) {
        self.level.store(level.rank(), Ordering::Relaxed);
    }

    /// Requests a minute one address may make now (0: unlimited).
    pub fn per_minute(&self) -> u32 {
        if self.normal_per_minute == 0 {
            0
        } else {
            self.level().per_address_limit(self.normal_per_minute)
        }
    }

    /// Whether `address` may make one more public request now; if not, how
    /// long until it may, and whether this refusal should be reported.
    pub fn admit(&self, address: IpAddr) -> Result<(), (Duration, bool)> {
        if self.normal_per_minute == 0 {
            return Ok(());
        }
        let Some(limiter) = self.limiters.get(usize::from(self.level().rank())) else {
            return Ok(());
        };
        limiter.check_key(&address).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait, self.reported.check_key(&address).is_ok())
        })
    }

    /// Forgets addresses whose allowance is full again (bounded memory under
    /// a flood from many addresses).
    fn forget_idle(&self) {
        for l in &self.limiters {
            l.retain_recent();
            l.shrink_to_fit();
        }
        self.reported.retain_recent();
        self.reported.shrink_to_fit();
    }
}

/// Reads the level every node shares every two seconds (and forgets idle
/// addresses every minute).
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for n in 0u64.. {
            tick.tick().await;
            match state.store.alert_level().await {
                Ok(level) => state.posture.set(level),
                Err(e) => tracing::warn!(error = %e, "reading the alert level"),
            }
            if n % 30 == 29 {
                state.posture.forget_idle();
            }
        }
    })
}

/// The answer to a request over the limit: a problem for the API, a page
/// for people, both with `Retry-After`.
pub fn refused(headers: &HeaderMap, api: bool, wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = if api {
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too many requests",
        )
        .detail(format!(
            "this address has made too many requests; try again in {seconds} s"
        ))
        .into_response()
    } else {
        PageError::too_many(crate::web::preferred_lang(headers)).into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// A machine key waiting for a second approval.
pub struct PendingKey {
    pub key_id: String,
    pub since: String,
    pub by: String,
}

/// One setting of the level, as pages show it.
pub struct LevelView {
    pub level: &'static str,
    pub reason: String,
    pub at: String,
    pub by: String,
}

#[derive(Template)]
#[template(path = "security_level.html")]
struct LevelPage {
    layout: Layout,
    level: &'static str,
    levels: Vec<&'static str>,
    per_minute: u32,
    second_approval: bool,
    history: Vec<LevelView>,
    pending: Vec<PendingKey>,
    /// Whether the caller may set it (analysts; auditors read).
    may_set: bool,
    csrf: String,
}

pub async fn level_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let history = state
        .store
        .alert_levels(50)
        .await
        .map_err(store_failed(ctx.lang))?;
    let level = history
        .first()
        .map_or(AlertLevel::Normal, nara_store::secops::AlertLevelSet::level);
    let pending = state
        .store
        .pending_machine_clients()
        .await
        .map_err(store_failed(ctx.lang))?
        .into_iter()
        .map(|(c, by)| PendingKey {
            since: when(c.pending_since.unwrap_or(c.created_at)),
            key_id: c.key_id,
            by,
        })
        .collect();
    let person = ctx.caller.person();
    Ok(render(&LevelPage {
        pending,
        layout: ctx.layout(ctx.tr().s("level.title"), "security"),
        level: level.as_str(),
        levels: AlertLevel::ALL
            .into_iter()
            .map(AlertLevel::as_str)
            .collect(),
        per_minute: if state.config.rate_limit_per_minute == 0 {
            0
        } else {
            level.per_address_limit(state.config.rate_limit_per_minute)
        },
        second_approval: level.machine_keys_need_second_approval(),
        history: history
            .into_iter()
            .map(|h| LevelView {
                level: h.level().as_str(),
                at: when(h.set_at),
                by: h.set_by,
                reason: h.reason,
            })
            .collect(),
        may_set: person.is_some_and(|p| p.has_role(nara_core::identity::Role::SecurityAnalyst)),
        csrf: person.and_then(|p| p.csrf()).unwrap_or_default().to_owned(),
    }))
}

#[derive(Deserialize)]
pub struct LevelForm {
    /// The level the analyst saw when they chose (so two analysts cannot
    /// overwrite each other unknowingly).
    from: String,
    to: String,
    reason: String,
}

/// Sets the level (analysts), with a reason of 10 to 500 characters.
pub async fn set_level(
    ctx: PageCtx,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<LevelForm>,
) -> Result<Response, PageError> {
    let (Some(from), Some(to)) = (AlertLevel::parse(&form.from), AlertLevel::parse(&form.to))
    else {
        return Err(PageError::bad_request(ctx.lang));
    };
    let reason = form.reason.trim();
    if from == to || !(10..=500).contains(&reason.chars().count()) {
        return Err(PageError::bad_request(ctx.lang));
    }
    let Some(person) = ctx.caller.person() else {
        return Err(PageError::forbidden(ctx.lang));
    };
    match state
        .store
        .set_alert_level(from, to, reason, &person.actor())
        .await
    {
        Ok(_) => {
            // This node acts at once; the others within two seconds.
            state.posture.set(to);
            Ok(Redirect::to("/security/level").into_response())
        }
        Err(nara_store::StoreError::Conflict(_)) => Err(PageError::conflict(ctx.lang)),
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    layout: Layout,
    level: &'static str,
    since: Option<String>,
    /// Services whose systems are not all up: id, name, state.
    services: Vec<(i64, String, String)>,
}

/// The public status page: the national alert level and since when (the
/// analyst's reason stays with the analysts).
pub async fn status_page(
    ctx: PageCtx,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    let latest = state
        .store
        .alert_levels(1)
        .await
        .map_err(store_failed(ctx.lang))?;
    let latest = latest.first();
    let services = state
        .store
        .services_not_up()
        .await
        .map_err(store_failed(ctx.lang))?;
    Ok(render(&StatusPage {
        services,
        layout: ctx.layout(ctx.tr().s("status.title"), "status"),
        level: latest.map_or(AlertLevel::Normal, |l| l.level()).as_str(),
        since: latest.map(|l| when(l.set_at)),
    }))
}

#[derive(Deserialize)]
pub struct ApproveKey {
    key_id: String,
}

/// Approves a machine key registered at caution or above (analysts; not
/// the key's own registrar).
pub async fn approve_key(
    ctx: PageCtx,
    State(state): State<AppState>,
    CsrfForm(form): CsrfForm<ApproveKey>,
) -> Result<Response, PageError> {
    let Some(person) = ctx.caller.person() else {
        return Err(PageError::forbidden(ctx.lang));
    };
    match state
        .store
        .approve_machine_client(&form.key_id, &person.actor())
        .await
    {
        Ok(()) => Ok(Redirect::to("/security/level#keys").into_response()),
        Err(nara_store::StoreError::Conflict(_)) => Err(PageError::conflict(ctx.lang)),
        Err(e) => Err(store_failed(ctx.lang)(e)),
    }
}
