//! The exporter thread: batches finished spans (up to [`MAX_BATCH`], or what came within
//! `export_interval_ms` of the first) and POSTs each batch to the OTLP/HTTP endpoint, as the
//! OTLP spec says a client does: 429, 502, 503 and 504 and a failed connection are retried
//! with backoff (honouring `Retry-After`, at most [`ATTEMPTS`] tries); any other answer drops
//! the batch. Everything dropped is counted (`opensports_telemetry_spans_dropped_total`); the
//! server never waits on the collector.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{Protocol, Span, TelemetryConfig, otlp};
use crate::metrics as m;

/// Spans per request.
const MAX_BATCH: usize = 512;
/// Tries per batch.
const ATTEMPTS: u32 = 4;
/// Longest pause between tries (a longer `Retry-After` is cut to this).
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn spawn(cfg: &TelemetryConfig, rx: Receiver<Span>) -> std::io::Result<()> {
    let exporter = Exporter {
        url: cfg.traces_url(),
        protocol: cfg.protocol,
        service: cfg.service_name.clone(),
        interval: Duration::from_millis(cfg.export_interval_ms.max(1)),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .into(),
    };
    std::thread::Builder::new().name("otlp-export".into()).spawn(move || exporter.run(rx))?;
    Ok(())
}

struct Exporter {
    url: String,
    protocol: Protocol,
    service: String,
    interval: Duration,
    agent: ureq::Agent,
}

impl Exporter {
    /// Until every sender is gone (the server stopped), then what is left goes out.
    fn run(self, rx: Receiver<Span>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = rx.recv() {
            batch.push(first);
            let due = Instant::now() + self.interval;
            let mut open = true;
            while batch.len() < MAX_BATCH {
                match rx.recv_deadline(due) {
                    Ok(s) => batch.push(s),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            self.send(&batch);
            batch.clear();
            if !open {
                break;
            }
        }
    }

    fn send(&self, spans: &[Span]) {
        let (body, content_type) = match self.protocol {
            Protocol::HttpProtobuf => (otlp::protobuf(&self.service, spans), "application/x-protobuf"),
            Protocol::HttpJson => (otlp::json(&self.service, spans), "application/json"),
        };
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            let wait = match self.agent.post(&self.url).content_type(content_type).send(&body[..]) {
                Ok(r) if r.status().is_success() => {
                    metrics::counter!(m::TELEMETRY_SPANS_EXPORTED_TOTAL).increment(spans.len() as u64);
                    return;
                }
                Ok(r) if matches!(r.status().as_u16(), 429 | 502 | 503 | 504) => {
                    let after = r.headers().get("retry-after").and_then(|v| v.to_str().ok());
                    after.and_then(|s| s.trim().parse().ok()).map(Duration::from_secs)
                }
                Ok(r) => {
                    tracing::warn!(status = r.status().as_u16(), url = %self.url, "the OTLP endpoint refused spans");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, url = %self.url, attempt, "OTLP export failed");
                    None
                }
            };
            if attempt < ATTEMPTS {
                metrics::counter!(m::TELEMETRY_EXPORT_RETRIES_TOTAL).increment(1);
                std::thread::sleep(wait.unwrap_or(backoff).min(MAX_BACKOFF));
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        metrics::counter!(m::TELEMETRY_SPANS_DROPPED_TOTAL).increment(spans.len() as u64);
    }
}
