//! Prometheus metrics of the mirror: requests by protocol family and status class, request
//! latency, bytes served, imports by result and outbound connections the egress guard refused
//! (pushes to a site registry are the mirror's only outbound traffic).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    family: &'static str,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ImportLabels {
    result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    bytes_served: Counter,
    imports: Family<ImportLabels, Counter>,
    egress_refusals: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("airlock_mirror_requests", "Requests served, by route family and status class", requests.clone());
        let latency = Histogram::new(BUCKETS);
        registry.register("airlock_mirror_request_duration_seconds", "Request latency until the response head", latency.clone());
        let bytes_served = Counter::default();
        registry.register(
            "airlock_mirror_bytes_served",
            "Blob bytes in the responses served (a download cut short counts whole)",
            bytes_served.clone(),
        );
        registry.register_collector(Box::new(SendfileBytes));
        let imports = Family::<ImportLabels, Counter>::default();
        registry.register("airlock_mirror_imports", "Bundle imports through the running mirror, by result", imports.clone());
        let egress_refusals = Counter::default();
        registry.register(
            "airlock_mirror_egress_refusals",
            "Outbound connections the egress guard refused (pushes to a registry outside egress.allow)",
            egress_refusals.clone(),
        );
        // Every result exists from the start, at zero, so rates and alerts see the first import.
        for result in ["imported", "already-imported", "refused"] {
            let _ = imports.get_or_create(&ImportLabels { result });
        }
        Metrics { registry, requests, latency, bytes_served, imports, egress_refusals }
    }
}

impl Metrics {
    pub fn observe(&self, family: &'static str, status: u16, seconds: f64) {
        let status = format!("{}xx", status / 100);
        self.requests.get_or_create(&RequestLabels { family, status }).inc();
        self.latency.observe(seconds);
    }

    pub fn add_bytes_served(&self, bytes: u64) {
        self.bytes_served.inc_by(bytes);
    }

    pub fn import_result(&self, result: &'static str) {
        self.imports.get_or_create(&ImportLabels { result }).inc();
    }

    /// A counter the egress guard's audit hook increments (see `airlock_egress::ObservedAudit`).
    pub fn egress_refusals(&self) -> Counter {
        self.egress_refusals.clone()
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Bytes sent by sendfile(2), read from the process-wide count at scrape time.
#[derive(Debug)]
struct SendfileBytes;

impl Collector for SendfileBytes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(crate::zero_copy::bytes_sent_by_sendfile());
        let metric = encoder.encode_descriptor(
            "airlock_mirror_bytes_sendfile",
            "Bytes actually sent from the page cache by sendfile(2)",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}
