//! Prometheus metrics (GET /metrics) and the live figures of /optimization/status, each
//! recorded where the event happens: the HTTP middleware for requests, the batcher's observer
//! for queue depth, batch sizes and rejections.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

use super::batcher::{Observer, Rejected};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteCode {
    route: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelReason {
    model: String,
    reason: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_buckets() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn size_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 10))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RouteCode, Counter>,
    latency: Histograms<RouteLabel>,
    queue_depth: Family<ModelLabel, Gauge>,
    batch_size: Histograms<ModelLabel>,
    batch_seconds: Histograms<ModelLabel>,
    dropped: Family<ModelReason, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("deepinsight");
        let requests = Family::<RouteCode, Counter>::default();
        let latency = Histograms::<RouteLabel>::new_with_constructor(latency_buckets);
        let queue_depth = Family::<ModelLabel, Gauge>::default();
        let batch_size = Histograms::<ModelLabel>::new_with_constructor(size_buckets);
        let batch_seconds = Histograms::<ModelLabel>::new_with_constructor(latency_buckets);
        let dropped = Family::<ModelReason, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register(
            "queue_depth",
            "Samples waiting in the batcher",
            queue_depth.clone(),
        );
        registry.register(
            "batch_size",
            "Samples per computed batch",
            batch_size.clone(),
        );
        registry.register(
            "batch_compute_seconds",
            "Compute time per batch",
            batch_seconds.clone(),
        );
        registry.register(
            "requests_dropped",
            "Requests not computed, by reason (queue_full, deadline_exceeded, client_gone)",
            dropped.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            queue_depth,
            batch_size,
            batch_seconds,
            dropped,
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    fn request(&self, route: &str, code: u16, seconds: f64) {
        self.requests
            .get_or_create(&RouteCode {
                route: route.to_string(),
                code,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    /// The batcher observer of one model, feeding these metrics and its live figures.
    pub fn observer(self: &Arc<Self>, model: &str, live: Arc<LiveStats>) -> Arc<dyn Observer> {
        Arc::new(ModelObserver {
            metrics: self.clone(),
            label: ModelLabel {
                model: model.to_string(),
            },
            live,
        })
    }
}

/// Records every request's route (the matched pattern, so that ids do not explode the label
/// set), status code and latency.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let response = next.run(request).await;
    metrics.request(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

struct ModelObserver {
    metrics: Arc<Metrics>,
    label: ModelLabel,
    live: Arc<LiveStats>,
}

impl ModelObserver {
    fn drop_reason(&self, reason: &str) {
        self.metrics
            .dropped
            .get_or_create(&ModelReason {
                model: self.label.model.clone(),
                reason: reason.to_string(),
            })
            .inc();
    }
}

impl Observer for ModelObserver {
    fn queue_depth(&self, samples: usize) {
        self.metrics
            .queue_depth
            .get_or_create(&self.label)
            .set(samples as i64);
    }

    fn batch(&self, samples: usize, _requests: usize) {
        self.metrics
            .batch_size
            .get_or_create(&self.label)
            .observe(samples as f64);
        self.live.batch(samples);
    }

    fn batch_done(&self, seconds: f64) {
        self.metrics
            .batch_seconds
            .get_or_create(&self.label)
            .observe(seconds);
    }

    fn rejected(&self, why: &Rejected) {
        let reason = match why {
            Rejected::QueueFull { .. } => "queue_full",
            Rejected::DeadlineExceeded => "deadline_exceeded",
            Rejected::ShuttingDown => "shutting_down",
            Rejected::BadPriority { .. } | Rejected::Failed(_) => return,
        };
        self.drop_reason(reason);
    }

    fn client_gone(&self) {
        self.drop_reason("client_gone");
    }
}

/// The last minute of one model's traffic, for /optimization/status.
#[derive(Default)]
pub struct LiveStats {
    inner: Mutex<LiveWindow>,
}

#[derive(Default)]
struct LiveWindow {
    /// (when, seconds) of each answered request.
    latencies: VecDeque<(Instant, f64)>,
    /// (when, samples) of each batch.
    batches: VecDeque<(Instant, usize)>,
}

const WINDOW: Duration = Duration::from_secs(60);
/// Entries kept at most, so that a flood cannot grow the window without bound.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct LiveSummary {
    pub window_seconds: f64,
    pub requests: usize,
    pub requests_per_second: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub batches: usize,
    pub mean_batch_size: Option<f64>,
}

impl LiveStats {
    pub fn request(&self, latency: Duration) {
        if let Ok(mut w) = self.inner.lock() {
            let now = Instant::now();
            w.latencies.push_back((now, latency.as_secs_f64()));
            w.trim(now);
        }
    }

    fn batch(&self, samples: usize) {
        if let Ok(mut w) = self.inner.lock() {
            let now = Instant::now();
            w.batches.push_back((now, samples));
            w.trim(now);
        }
    }

    pub fn summary(&self) -> LiveSummary {
        let Ok(mut w) = self.inner.lock() else {
            return LiveSummary::empty();
        };
        let now = Instant::now();
        w.trim(now);
        let mut ms: Vec<f64> = w.latencies.iter().map(|l| l.1 * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let span = w
            .latencies
            .front()
            .map_or(0.0, |f| now.duration_since(f.0).as_secs_f64())
            .max(1.0);
        let samples: usize = w.batches.iter().map(|b| b.1).sum();
        LiveSummary {
            window_seconds: WINDOW.as_secs_f64(),
            requests: ms.len(),
            requests_per_second: ms.len() as f64 / span,
            p50_ms: percentile(&ms, 0.50),
            p95_ms: percentile(&ms, 0.95),
            p99_ms: percentile(&ms, 0.99),
            batches: w.batches.len(),
            mean_batch_size: (!w.batches.is_empty())
                .then(|| samples as f64 / w.batches.len() as f64),
        }
    }
}

impl LiveSummary {
    fn empty() -> Self {
        Self {
            window_seconds: WINDOW.as_secs_f64(),
            requests: 0,
            requests_per_second: 0.0,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            batches: 0,
            mean_batch_size: None,
        }
    }
}

impl LiveWindow {
    fn trim(&mut self, now: Instant) {
        let old = |t: Instant| now.duration_since(t) > WINDOW;
        while self.latencies.front().is_some_and(|e| old(e.0)) || self.latencies.len() > MAX_ENTRIES
        {
            self.latencies.pop_front();
        }
        while self.batches.front().is_some_and(|e| old(e.0)) || self.batches.len() > MAX_ENTRIES {
            self.batches.pop_front();
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&v, 1.0), Some(100.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn live_stats_summarise_requests_and_batches() {
        let live = LiveStats::default();
        for ms in [10, 20, 30, 40] {
            live.request(Duration::from_millis(ms));
        }
        live.batch(3);
        live.batch(1);
        let s = live.summary();
        assert_eq!(s.requests, 4);
        assert_eq!(s.p50_ms, Some(20.0));
        assert_eq!(s.p99_ms, Some(40.0));
        assert_eq!(s.mean_batch_size, Some(2.0));
    }

    #[test]
    fn the_exposition_carries_each_family() {
        let metrics = Arc::new(Metrics::default());
        metrics.request("/predict", 200, 0.01);
        let observer = metrics.observer("demo", Arc::new(LiveStats::default()));
        observer.batch(4, 2);
        observer.queue_depth(3);
        observer.rejected(&Rejected::QueueFull { capacity: 1 });
        let text = metrics.encode();
        assert!(
            text.contains(r#"deepinsight_http_requests_total{route="/predict",code="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"deepinsight_queue_depth{model="demo"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"deepinsight_batch_size_sum{model="demo"} 4.0"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"deepinsight_requests_dropped_total{model="demo",reason="queue_full"} 1"#
            ),
            "{text}"
        );
    }
}
