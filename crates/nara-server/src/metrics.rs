//! Prometheus metrics at `/metrics`: per-route request counts and latency
//! histograms, and the database pool. Served in the OpenMetrics text format,
//! which Prometheus scrapes natively. Routes are labelled by their pattern
//! (`/api/v1/systems/{id}`), never the raw path, to keep cardinality bounded.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    service: String,
    client: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    ledger_entries: Gauge,
    ledger_pending: Gauge,
    ledger_checkpoint_age: Gauge,
    backup_recovery_point: Gauge<f64, std::sync::atomic::AtomicU64>,
    backup_last_verified_age: Gauge,
    backups: Gauge,
    backup_destination_up: Gauge,
    /// The continuous backup's stream, copied from its own counters at
    /// each scrape (under the lock, so two scrapes never count a step twice).
    stream: std::sync::Mutex<()>,
    stream_segments: Counter,
    stream_bytes: Counter,
    stream_restarts: Counter,
    stream_checkpoints: Family<CheckpointLabels, Counter>,
    exchanges: Family<ExchangeLabels, Counter>,
    exchange_latency: Family<ServiceLabels, Histogram, fn() -> Histogram>,
    syslog: Family<SyslogLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
}

/// A model's decisions by the state they were recorded in (bounded: the
/// registered models and four states).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    model: String,
    state: String,
}

/// A checkpoint of the continuous backup: whether it held the writers
/// (took the write lock) or folded the log beside them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckpointLabels {
    held_writers: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyslogLabels {
    transport: &'static str,
    outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 8 s, doubling.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("nara");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        let (pool_size, pool_idle, pool_max) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open database connections",
            pool_size.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections",
            pool_idle.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "The database pool's limit",
            pool_max.clone(),
        );
        let (ledger_entries, ledger_pending, ledger_checkpoint_age) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "ledger_entries",
            "Entries in the latest signed checkpoint",
            ledger_entries.clone(),
        );
        registry.register(
            "ledger_pending_entries",
            "Entries written but not yet in a checkpoint",
            ledger_pending.clone(),
        );
        registry.register(
            "ledger_checkpoint_age_seconds",
            "Seconds since the latest checkpoint was signed",
            ledger_checkpoint_age.clone(),
        );
        let backup_recovery_point = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let (backup_last_verified_age, backups) = (Gauge::default(), Gauge::default());
        registry.register(
            "backup_recovery_point_seconds",
            "Seconds of committed writes a disaster now would lose: since the log was last shipped, or since the newest backup (-1: no backup yet)",
            backup_recovery_point.clone(),
        );
        registry.register(
            "backup_last_verified_age_seconds",
            "Seconds since a backup was last proven by a restore (-1: never)",
            backup_last_verified_age.clone(),
        );
        registry.register("backups", "Backups in the destination", backups.clone());
        let backup_destination_up = Gauge::default();
        registry.register(
            "backup_destination_up",
            "Whether the backup destination answered (1) or not (0)",
            backup_destination_up.clone(),
        );
        let (stream_segments, stream_bytes, stream_restarts) =
            (Counter::default(), Counter::default(), Counter::default());
        let stream_checkpoints = Family::<CheckpointLabels, Counter>::default();
        registry.register(
            "backup_stream_segments",
            "Segments of the write-ahead log shipped by the continuous backup",
            stream_segments.clone(),
        );
        registry.register(
            "backup_stream_bytes",
            "Bytes of the write-ahead log shipped by the continuous backup, before encryption",
            stream_bytes.clone(),
        );
        registry.register(
            "backup_stream_log_restarts",
            "Times the write-ahead log restarted after a complete checkpoint and the stream followed it",
            stream_restarts.clone(),
        );
        registry.register(
            "backup_stream_checkpoints",
            "Checkpoints of the continuous backup, by whether they held the writers (took the write lock) or folded the log beside them",
            stream_checkpoints.clone(),
        );
        let exchanges = Family::<ExchangeLabels, Counter>::default();
        let exchange_latency: Family<ServiceLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "exchanges",
            "Exchanges through the gateway, by service, client and outcome (ok or the X-Road error type)",
            exchanges.clone(),
        );
        registry.register(
            "exchange_duration_seconds",
            "Time to mediate an exchange, by service",
            exchange_latency.clone(),
        );
        let syslog = Family::<SyslogLabels, Counter>::default();
        registry.register(
            "syslog_messages",
            "Syslog messages from agency systems, by transport (udp, tcp; any for stored) and outcome (stored, malformed, refused_sender, dropped)",
            syslog.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "algorithm_decisions",
            "Decision records of registered models, by model and the state recorded (awaiting_review, automatic)",
            decisions.clone(),
        );
        Arc::new(Metrics {
            decisions,
            syslog,
            exchanges,
            exchange_latency,
            registry,
            requests,
            latency,
            pool_size,
            pool_idle,
            pool_max,
            ledger_entries,
            ledger_pending,
            ledger_checkpoint_age,
            backup_recovery_point,
            backup_last_verified_age,
            backups,
            backup_destination_up,
            stream: std::sync::Mutex::new(()),
            stream_segments,
            stream_bytes,
            stream_restarts,
            stream_checkpoints,
        })
    }
}

impl Metrics {
    /// Brings the stream's counters up to the shipper's own.
    fn copy_stream(&self, live: &crate::backup::stream::Live) {
        use std::sync::atomic::Ordering::Relaxed;
        let Ok(_copying) = self.stream.lock() else {
            return;
        };
        let catch_up = |counter: &Counter, now: u64| {
            counter.inc_by(now.saturating_sub(counter.get()));
        };
        catch_up(&self.stream_segments, live.segments.load(Relaxed));
        catch_up(&self.stream_bytes, live.bytes.load(Relaxed));
        catch_up(&self.stream_restarts, live.restarts.load(Relaxed));
        for (held, count) in [
            ("false", &live.folded_beside_writers),
            ("true", &live.folded_locked),
        ] {
            catch_up(
                &self
                    .stream_checkpoints
                    .get_or_create(&CheckpointLabels { held_writers: held }),
                count.load(Relaxed),
            );
        }
    }

    /// Counts one decision record of a registered model.
    pub fn decision(&self, model: &str, state: &str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                model: model.to_owned(),
                state: state.to_owned(),
            })
            .inc();
    }

    /// Counts one syslog message by what became of it.
    pub fn syslog(&self, transport: &'static str, outcome: &'static str) {
        self.syslog
            .get_or_create(&SyslogLabels { transport, outcome })
            .inc();
    }

    /// Counts one exchange. Services and clients are labelled only once the
    /// gateway has parsed them (else `unknown`), and only registered
    /// services reach the provider, so the label sets stay bounded.
    pub fn exchange(&self, service: &str, client: &str, outcome: &str, took: std::time::Duration) {
        self.exchanges
            .get_or_create(&ExchangeLabels {
                service: service.to_owned(),
                client: client.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.exchange_latency
            .get_or_create(&ServiceLabels {
                service: service.to_owned(),
            })
            .observe(took.as_secs_f64());
    }
}

/// A method as a label: the nine of RFC 9110 (and PATCH) by name, any other
/// token as `other`, so that a client cannot grow the label set (or a log
/// line) by inventing methods.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Middleware: counts and times every request by its route pattern
/// (`unmatched` for every path no route serves).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let metrics = &state.metrics;
    metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let pool = state.store.pool_stats();
    let metrics = &state.metrics;
    metrics.pool_size.set(i64::from(pool.size));
    metrics.pool_idle.set(i64::from(pool.idle));
    metrics.pool_max.set(i64::from(pool.max));
    // The ledger's health: a growing backlog or an old checkpoint means the integrator is stuck.
    if let Ok(Some(cp)) = state.store.latest_checkpoint().await {
        metrics.ledger_entries.set(cp.size as i64);
        metrics
            .ledger_checkpoint_age
            .set((nara_core::Timestamp::now().0 - cp.created_at).max(0) / 1000);
    }
    if let Ok(pending) = state.store.ledger_pending_count().await {
        metrics.ledger_pending.set(pending as i64);
    }
    if let Some(plan) = crate::backup::schedule::Plan::of(&state.config) {
        let status = plan.destination.status().await;
        metrics
            .backup_destination_up
            .set(i64::from(status.is_some()));
        let status = status.unwrap_or_default();
        let now = nara_core::Timestamp::now().0;
        let age = |at: Option<i64>| at.map_or(-1, |at| (now - at).max(0) / 1000);
        // Streaming: the writes not yet shipped; otherwise since the newest backup.
        let recovery_point = match state.backup_stream.recovery_point_seconds(now) {
            Some(seconds) => seconds,
            None => age(status.last_backup_ms) as f64,
        };
        metrics.backup_recovery_point.set(recovery_point);
        metrics
            .backup_last_verified_age
            .set(age(status.last_verified_ms));
        metrics.backups.set(status.backups as i64);
        metrics.copy_stream(&state.backup_stream);
    }
    let mut body = String::new();
    if prometheus_client::encoding::text::encode(&mut body, &metrics.registry).is_err() {
        return crate::problem::Problem::internal().into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;

    #[test]
    fn the_backup_streams_counters_are_copied_once_however_often_scraped() {
        let metrics = Metrics::new();
        let live = crate::backup::stream::Live::default();
        live.segments.store(12, Relaxed);
        live.bytes.store(4_096, Relaxed);
        live.restarts.store(2, Relaxed);
        live.folded_beside_writers.store(3, Relaxed);
        live.folded_locked.store(1, Relaxed);
        metrics.copy_stream(&live);
        metrics.copy_stream(&live);
        live.folded_locked.store(2, Relaxed);
        metrics.copy_stream(&live);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        for line in [
            "nara_backup_stream_segments_total 12",
            "nara_backup_stream_bytes_total 4096",
            "nara_backup_stream_log_restarts_total 2",
            "nara_backup_stream_checkpoints_total{held_writers=\"false\"} 3",
            "nara_backup_stream_checkpoints_total{held_writers=\"true\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
