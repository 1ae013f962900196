//! Where a shard's stages put their publications: each is serialized once into a reused
//! buffer, copied once into the shard's [`Batch`], and published with the rest of the batch.

use std::sync::Arc;
use std::time::Instant;

use crate::fanout::{Batch, Fanout, Topic};
use crate::metrics as m;
use crate::telemetry::Traced;

pub(crate) struct Out {
    fanout: Arc<Fanout>,
    /// Reused serialization buffer: JSON is written here, then copied once into the batch.
    buf: Vec<u8>,
    /// Reused topic-name buffer (plugin outputs).
    name: String,
    /// Publications made while draining the queue, published together.
    batch: Batch,
    /// Ingest times and source ts of the events whose publications are in `batch`: their
    /// latency and age are taken when the batch goes out.
    staged: Vec<(Instant, i64)>,
    /// Traces of sampled events whose publications are in `batch`.
    traced: Vec<Arc<Traced>>,
    /// Ingest → published.
    latency: metrics::Histogram,
    /// Event age when published.
    age: metrics::Histogram,
}

impl Out {
    pub(crate) fn new(fanout: Arc<Fanout>, max_batch: usize) -> Out {
        Out {
            fanout,
            buf: Vec::with_capacity(4096),
            name: String::new(),
            batch: Batch::default(),
            staged: Vec::with_capacity(max_batch),
            traced: Vec::new(),
            latency: metrics::histogram!(m::PIPELINE_LATENCY_SECONDS),
            age: metrics::histogram!(m::EVENT_AGE_SECONDS, "stage" => m::AGE_STAGES[2]),
        }
    }

    /// Stages what `write` puts in the buffer (nothing when it returns false) on the topic
    /// `slot` holds, made from `name()` the first time (none past `fanout.max_topics`).
    pub(crate) fn stage(
        &mut self,
        slot: &mut Option<Arc<Topic>>,
        name: impl FnOnce() -> String,
        ts: i64,
        write: impl FnOnce(&mut Vec<u8>) -> bool,
    ) {
        self.buf.clear();
        if !write(&mut self.buf) {
            return;
        }
        if slot.is_none() {
            *slot = self.fanout.topic(&name());
        }
        if let Some(t) = slot {
            self.batch.push(t, ts, &self.buf);
        }
    }

    /// The topic `slot` holds, made from `name()` the first time (for a stage that hands its
    /// publication to another task, the analyst's rephraser).
    pub(crate) fn topic(
        &self,
        slot: &mut Option<Arc<Topic>>,
        name: impl FnOnce() -> String,
    ) -> Option<Arc<Topic>> {
        if slot.is_none() {
            *slot = self.fanout.topic(&name());
        }
        slot.clone()
    }

    /// Stages a plugin's emit (already JSON) on `game/{id}/{plugin}/{name}`.
    pub(crate) fn stage_plugin_output(
        &mut self,
        game: &str,
        plugin: &str,
        name: &str,
        ts: i64,
        payload: &[u8],
    ) {
        opensports_proto::topic::plugin_output_into(&mut self.name, game, plugin, name);
        if let Some(t) = self.fanout.topic(&self.name) {
            self.batch.push(&t, ts, payload);
        }
    }

    /// An event's stages are done: its latency and age are taken when the batch goes out.
    pub(crate) fn event_done(&mut self, received: Instant, ts: i64) {
        self.staged.push((received, ts));
    }

    /// What is staged from now until [`Out::untraced`] belongs to `trace` (a sampled event).
    pub(crate) fn traced(&mut self, trace: &Arc<Traced>) {
        self.batch.trace(Some(trace.clone()));
        self.traced.push(trace.clone());
    }

    pub(crate) fn untraced(&mut self) {
        self.batch.trace(None);
    }

    /// The staged publications from the `from`-th on (see [`Batch::since`]).
    pub(crate) fn staged_since(&self, from: usize) -> impl Iterator<Item = (&str, &[u8])> {
        self.batch.since(from)
    }

    /// Publications staged so far.
    pub(crate) fn staged(&self) -> usize {
        self.batch.len()
    }

    /// Publishes what is staged and records each staged event's ingest → published latency and
    /// age, against one reading of each clock for the batch.
    pub(crate) fn publish(&mut self) {
        let started = (!self.traced.is_empty()).then(Instant::now);
        self.fanout.publish_batch(&mut self.batch);
        if let Some(started) = started {
            let now = Instant::now();
            for t in self.traced.drain(..) {
                t.span("publish", None, (started, now), None);
                t.published(now);
            }
        }
        if self.staged.is_empty() {
            return;
        }
        let (now, now_us) = (Instant::now(), m::now_us());
        for (received, ts) in self.staged.drain(..) {
            self.latency.record(now.saturating_duration_since(received).as_secs_f64());
            self.age.record(m::age_secs_at(now_us, ts));
        }
    }
}
