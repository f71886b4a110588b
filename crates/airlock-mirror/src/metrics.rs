//! Prometheus metrics: requests by route family and status class, bytes served, request
//! latency, and import results.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::collections::BTreeMap;

/// Latency buckets in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String), u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    bytes_served: AtomicU64,
    imports: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    pub fn observe(&self, family: &str, status: u16, seconds: f64) {
        let class = format!("{}xx", status / 100);
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry((family.to_string(), class)).or_default() += 1;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn add_bytes_served(&self, bytes: u64) {
        self.bytes_served.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn import_result(&self, result: &str) {
        *self.imports.lock().unwrap_or_else(|p| p.into_inner()).entry(result.to_string()).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP airlock_mirror_requests_total Requests served, by route family and status class.\n");
        out.push_str("# TYPE airlock_mirror_requests_total counter\n");
        for ((family, class), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "airlock_mirror_requests_total{{family=\"{family}\",status=\"{class}\"}} {n}");
        }
        out.push_str("# HELP airlock_mirror_request_duration_seconds Request latency until the response head.\n");
        out.push_str("# TYPE airlock_mirror_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "airlock_mirror_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "airlock_mirror_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "airlock_mirror_request_duration_seconds_sum {}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "airlock_mirror_request_duration_seconds_count {count}");
        out.push_str("# HELP airlock_mirror_bytes_served_total Blob bytes in the responses served (a download cut short counts whole).\n");
        out.push_str("# TYPE airlock_mirror_bytes_served_total counter\n");
        let _ = writeln!(out, "airlock_mirror_bytes_served_total {}", self.bytes_served.load(Ordering::Relaxed));
        out.push_str("# HELP airlock_mirror_bytes_sendfile_total Bytes actually sent from the page cache by sendfile(2).\n");
        out.push_str("# TYPE airlock_mirror_bytes_sendfile_total counter\n");
        let _ = writeln!(out, "airlock_mirror_bytes_sendfile_total {}", crate::zero_copy::bytes_sent_by_sendfile());
        out.push_str("# HELP airlock_mirror_imports_total Bundle imports by result.\n");
        out.push_str("# TYPE airlock_mirror_imports_total counter\n");
        for (result, n) in self.imports.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "airlock_mirror_imports_total{{result=\"{result}\"}} {n}");
        }
        out
    }
}
