//! Delay lines (PROTOCOL.md §2.7): a topic's publications released at their source time plus a
//! delay D, in order, never early, for outputs that must not run ahead of a delayed picture.
//!
//! Every subscriber of one topic at one delay shares one [`DelayLine`]: the topic hands the
//! line its publications as it hands them to a subscriber, the line holds those not due yet,
//! and one clock thread releases them to the line's own bindings with the same
//! [`super::deliver`] a topic uses (batches built once for all). A thousand graphics clients
//! on a 7 s delay cost one queue and one timer, not a thousand.
//!
//! - Due time: `ts + D`, as an instant; a source time later than its arrival (a clock ahead, a
//!   sped-up replay) counts as the arrival, and a message that arrives already due goes at
//!   once. Order wins over time: a message is never released before the one published
//!   before it.
//! - Bounds: `fanout.delay_line_bytes` per line and `fanout.delay_bytes` over all lines; past
//!   them the oldest held messages are dropped (counted) and the line's subscribers get `reset`
//!   and a snapshot of the next released one. `fanout.max_delay_lines` lines at once.
//! - A line's released history is the topic's history up to the line's last released seq, so
//!   `since` resumes a delayed subscription from the kept history exactly as an undelayed one.
//! - Operators may run the lines of a requested delay at another one (`POST
//!   /v1/delays/{ms}`): a shorter one releases what is now due at once ("catch up"), a
//!   longer one holds.
//!
//! Lock order: topic → line → clock heap; the clock thread takes a line's lock with no other
//! held.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use serde::Serialize;

use super::outbox::Item;
use super::outbox::Outbox;
use super::{Binding, Fanout, Pub, Resume, SubId, Topic, View, catch_up, deliver, reset_frame};
use crate::config::FanoutConfig;
use crate::metrics as m;
use opensports_proto::ws::Mode;

/// The clock's grid: a line wakes at the first tick of this grid after its first held
/// message is due, and every line due within one tick is released in the same wake-up. A
/// subscriber of many lines (`game/+/state`) is then woken once per tick at most, not once
/// per line and message; a release is late by under one tick, by design.
pub const RELEASE_QUANTUM: Duration = Duration::from_millis(1);

/// Distinct delays one session may hold at once.
pub const MAX_DELAYS_PER_SESSION: usize = 4;

/// When `p` is due on a line running at `delay_us`.
pub fn due(p: &super::Publication, delay_us: i64) -> Instant {
    let wait = (p.ts.saturating_sub(p.arrival_us).saturating_add(delay_us)).clamp(0, delay_us);
    p.at + Duration::from_micros(wait as u64)
}

/// What every delay line shares: the bounds, the byte and line counts, the operators'
/// overrides, and the clock that wakes lines when their next message is due.
#[derive(Debug)]
pub struct Delays {
    line_bytes: usize,
    total_bytes: usize,
    max_lines: usize,
    max_batch: usize,
    bytes: AtomicUsize,
    lines: AtomicUsize,
    next_gen: AtomicU64,
    /// Requested delay (ms) → the delay its lines run at (ms).
    overrides: RwLock<HashMap<u64, u64>>,
    heap: Mutex<BinaryHeap<Reverse<Wake>>>,
    wake: Condvar,
    stop: AtomicBool,
    thread: OnceLock<()>,
    /// The grid's origin.
    epoch: Instant,
    realtime: bool,
}

#[derive(Debug)]
struct Wake {
    at: Instant,
    generation: u64,
    line: Weak<DelayLine>,
}

impl PartialEq for Wake {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.generation) == (o.at, o.generation)
    }
}
impl Eq for Wake {}
impl PartialOrd for Wake {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Wake {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.generation).cmp(&(o.at, o.generation))
    }
}

impl Delays {
    pub fn new(cfg: &FanoutConfig) -> Arc<Delays> {
        Arc::new(Delays {
            line_bytes: cfg.delay_line_bytes,
            total_bytes: cfg.delay_bytes,
            max_lines: cfg.max_delay_lines,
            max_batch: cfg.max_batch_bytes,
            bytes: AtomicUsize::new(0),
            lines: AtomicUsize::new(0),
            next_gen: AtomicU64::new(1),
            overrides: RwLock::new(HashMap::new()),
            heap: Mutex::new(BinaryHeap::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
            epoch: Instant::now(),
            realtime: cfg.delay_clock_realtime,
        })
    }

    /// The delay lines of requested delay `ms` run at.
    pub fn effective_ms(&self, ms: u64) -> u64 {
        self.overrides.read().get(&ms).copied().unwrap_or(ms)
    }

    /// Sets (or, with `None`, clears) the delay the lines of requested delay `ms` run at.
    pub fn set_override(&self, ms: u64, effective: Option<u64>) {
        let mut o = self.overrides.write();
        match effective {
            Some(e) if e != ms => o.insert(ms, e),
            _ => o.remove(&ms),
        };
    }

    pub fn overrides(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self.overrides.read().iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_unstable();
        v
    }

    pub fn line_count(&self) -> usize {
        self.lines.load(Ordering::Relaxed)
    }

    /// Whether another line may be created.
    pub fn has_room(&self) -> bool {
        self.line_count() < self.max_lines
    }

    /// The line of `key_ms` among a topic's `lines`, created (and added) when it is the
    /// first; `None` past `max_delay_lines`.
    pub(super) fn line_in(
        self: &Arc<Self>,
        lines: &mut Vec<Arc<DelayLine>>,
        topic: &Arc<str>,
        key_ms: u64,
        history: &VecDeque<Pub>,
    ) -> Option<Arc<DelayLine>> {
        if let Some(l) = lines.iter().find(|l| l.key_ms == key_ms) {
            return Some(l.clone());
        }
        let line = self.line(topic, key_ms, history)?;
        lines.push(line.clone());
        Some(line)
    }

    /// A new line for `topic` at requested delay `key_ms`, started from the topic's kept
    /// `history` (what is already due counts as released); `None` past `max_delay_lines`.
    fn line(
        self: &Arc<Self>,
        topic: &Arc<str>,
        key_ms: u64,
        history: &VecDeque<Pub>,
    ) -> Option<Arc<DelayLine>> {
        if self.lines.fetch_add(1, Ordering::Relaxed) >= self.max_lines {
            self.lines.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!(m::DELAY_LINES_REFUSED_TOTAL).increment(1);
            return None;
        }
        metrics::gauge!(m::DELAY_LINES).increment(1.0);
        let effective_us = ms_to_us(self.effective_ms(key_ms));
        let line = Arc::new(DelayLine {
            topic: topic.clone(),
            key_ms,
            delays: self.clone(),
            inner: Mutex::new(LineInner { effective_us, ..LineInner::default() }),
        });
        {
            let now = Instant::now();
            let mut l = line.inner.lock();
            for p in history {
                let due = l.due(p);
                if l.pending.is_empty() && due <= now {
                    l.last_due = Some(due);
                    l.released = p.seq;
                    l.latest = Some(p.clone());
                } else {
                    self.hold(&mut l, p);
                }
            }
            self.bound(&mut l);
            line.schedule(&mut l);
            self.gauge_bytes();
        }
        Some(line)
    }

    fn schedule(self: &Arc<Self>, line: &Arc<DelayLine>, at: Instant, generation: u64) {
        let mut heap = self.heap.lock();
        let earliest = heap.peek().is_none_or(|Reverse(w)| at < w.at);
        heap.push(Reverse(Wake { at, generation, line: Arc::downgrade(line) }));
        drop(heap);
        if earliest {
            self.wake.notify_one();
        }
        self.thread.get_or_init(|| {
            let delays = self.clone();
            let spawned = std::thread::Builder::new().name("delay-clock".into()).spawn(move || {
                if delays.realtime {
                    realtime_priority();
                }
                delays.run()
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "the delay clock thread did not start: delayed subscribers get nothing");
            }
        });
    }

    /// The clock: sleeps until the earliest wake-up, then releases what is due on those lines.
    fn run(&self) {
        let mut due_now = Vec::new();
        loop {
            {
                let mut heap = self.heap.lock();
                loop {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let now = Instant::now();
                    while heap.peek().is_some_and(|Reverse(w)| w.at <= now) {
                        if let Some(Reverse(w)) = heap.pop() {
                            due_now.push(w);
                        }
                    }
                    if !due_now.is_empty() {
                        break;
                    }
                    match heap.peek().map(|Reverse(w)| w.at) {
                        Some(at) => {
                            self.wake.wait_until(&mut heap, at);
                        }
                        None => self.wake.wait(&mut heap),
                    }
                }
            }
            // Each line's own reading: its lateness counts the releases before it.
            for w in due_now.drain(..) {
                if let Some(line) = w.line.upgrade() {
                    line.release(Instant::now(), w.generation);
                }
            }
        }
    }

    /// The first tick of the grid strictly after `due`.
    fn tick_after(&self, due: Instant) -> Instant {
        let q = RELEASE_QUANTUM.as_nanos();
        let since = due.saturating_duration_since(self.epoch).as_nanos();
        let ticks = since / q + 1;
        self.epoch + Duration::from_nanos(u64::try_from(ticks * q).unwrap_or(u64::MAX))
    }

    /// Holds `p` on line `l`, counted against the bounds.
    fn hold(&self, l: &mut LineInner, p: &Pub) {
        l.pending.push_back(p.clone());
        l.pending_bytes += p.frame.len();
        self.bytes.fetch_add(p.frame.len(), Ordering::Relaxed);
    }

    /// Drops line `l`'s oldest held messages while it is over `delay_line_bytes` or all lines
    /// are over `delay_bytes` (the newest is always kept); its subscribers then get `reset`.
    fn bound(&self, l: &mut LineInner) {
        while l.pending.len() > 1
            && (l.pending_bytes > self.line_bytes || self.bytes.load(Ordering::Relaxed) > self.total_bytes)
        {
            let Some(old) = l.pending.pop_front() else { break };
            l.pending_bytes -= old.frame.len();
            self.bytes.fetch_sub(old.frame.len(), Ordering::Relaxed);
            l.gap = true;
            l.stats.dropped += 1;
            metrics::counter!(m::DELAY_DROPPED_TOTAL).increment(1);
        }
    }

    fn gauge_bytes(&self) {
        metrics::gauge!(m::DELAY_BUFFERED_BYTES).set(self.bytes.load(Ordering::Relaxed) as f64);
    }

    /// Stops the clock thread (the fan-out is going away).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _guard = self.heap.lock();
        self.wake.notify_all();
    }
}

/// Gives the calling thread real-time priority (`SCHED_RR` 1) if the process may; otherwise
/// logs why not and leaves it as it is.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn realtime_priority() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: `param` is a valid `sched_param`; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) };
    if rc == 0 {
        tracing::debug!("the delay clock runs at real-time priority (SCHED_RR 1)");
    } else {
        tracing::info!(
            error = %std::io::Error::last_os_error(),
            "the delay clock runs at normal priority (real-time needs root or CAP_SYS_NICE): releases may be late while the cores are busy"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn realtime_priority() {}

fn ms_to_us(ms: u64) -> i64 {
    i64::try_from(ms.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// One topic at one requested delay, with its subscribers.
#[derive(Debug)]
pub struct DelayLine {
    topic: Arc<str>,
    /// The delay its subscribers asked for, ms (what they share it by).
    pub(super) key_ms: u64,
    delays: Arc<Delays>,
    pub(super) inner: Mutex<LineInner>,
}

#[derive(Debug, Default)]
pub(super) struct LineInner {
    effective_us: i64,
    pending: VecDeque<Pub>,
    pending_bytes: usize,
    /// The seq of the last released publication, and that publication.
    pub released: u64,
    pub latest: Option<Pub>,
    /// The due time of the last released or held message: order wins over time.
    last_due: Option<Instant>,
    /// Held messages were dropped at the byte bound since the last release.
    gap: bool,
    pub bindings: Vec<Binding>,
    /// The generation of the clock wake-up that will release the next message, if one is set.
    scheduled: Option<u64>,
    stats: LineStats,
}

#[derive(Debug, Default, Clone, Copy)]
struct LineStats {
    released: u64,
    dropped: u64,
    late_max_us: u64,
    late_last_us: u64,
}

/// A line as the admin listing shows it.
#[derive(Debug, Serialize)]
pub struct LineInfo {
    pub topic: String,
    pub delay_ms: u64,
    pub effective_ms: u64,
    pub subscribers: usize,
    pub held: usize,
    pub held_bytes: usize,
    pub released_seq: u64,
    pub released: u64,
    pub dropped: u64,
    /// Release lateness (release time − due time), the largest and the last, µs.
    pub late_max_us: u64,
    pub late_last_us: u64,
}

impl LineInner {
    /// When `p` is due on this line: its own due time, or the one before it if that is later
    /// (order wins over time).
    fn due(&self, p: &super::Publication) -> Instant {
        due(p, self.effective_us).max(self.last_due.unwrap_or(p.at))
    }
}

impl DelayLine {
    /// Takes publications of its topic (ascending seq), the topic's lock held.
    pub(super) fn push(self: &Arc<Self>, pubs: &[Pub]) {
        let d = &self.delays;
        let mut l = self.inner.lock();
        for p in pubs {
            d.hold(&mut l, p);
        }
        d.bound(&mut l);
        if l.scheduled.is_none() {
            self.schedule(&mut l);
        }
        d.gauge_bytes();
    }

    /// Asks the clock to wake this line when its first held message is due (none: nothing).
    fn schedule(self: &Arc<Self>, l: &mut LineInner) {
        l.scheduled = None;
        let Some(front) = l.pending.front() else { return };
        let at = self.delays.tick_after(l.due(front));
        let generation = self.delays.next_gen.fetch_add(1, Ordering::Relaxed);
        l.scheduled = Some(generation);
        self.delays.schedule(self, at, generation);
    }

    /// Releases what is due at `now` to the line's subscribers (the clock's wake-up
    /// `generation`; a superseded one does nothing).
    fn release(self: &Arc<Self>, now: Instant, generation: u64) {
        let mut l = self.inner.lock();
        if l.scheduled != Some(generation) {
            return;
        }
        let mut out: Vec<Pub> = Vec::new();
        let lateness = metrics::histogram!(m::DELAY_LATENESS_SECONDS);
        while let Some(front) = l.pending.front() {
            let due = l.due(front);
            if due > now {
                break;
            }
            let late = now.saturating_duration_since(due);
            lateness.record(late.as_secs_f64());
            l.stats.late_last_us = late.as_micros() as u64;
            l.stats.late_max_us = l.stats.late_max_us.max(l.stats.late_last_us);
            l.last_due = Some(due);
            if let Some(p) = l.pending.pop_front() {
                l.pending_bytes -= p.frame.len();
                self.delays.bytes.fetch_sub(p.frame.len(), Ordering::Relaxed);
                out.push(p);
            }
        }
        if let Some(last) = out.last() {
            l.released = last.seq;
            l.latest = Some(last.clone());
            l.stats.released += out.len() as u64;
            let mut from = 0;
            if std::mem::take(&mut l.gap) {
                // Held messages were dropped: subscribers start over from the next one.
                for b in &l.bindings {
                    b.outbox.push_item(Item::Frame(reset_frame(&self.topic)));
                    b.outbox.push_item(Item::Snapshot(out[0].clone()));
                }
                from = 1;
            }
            deliver(&l.bindings, &out[from..], self.delays.max_batch);
        }
        self.schedule(&mut l);
        self.delays.gauge_bytes();
    }

    /// Runs the line at `effective_ms` from now on, releasing what is due by it at once.
    pub(super) fn set_effective(self: &Arc<Self>, effective_ms: u64) {
        let mut l = self.inner.lock();
        l.effective_us = ms_to_us(effective_ms);
        // Due times computed under the old delay no longer bind the order.
        l.last_due = None;
        self.schedule(&mut l);
    }

    pub(super) fn info(&self) -> LineInfo {
        let l = self.inner.lock();
        LineInfo {
            topic: self.topic.to_string(),
            delay_ms: self.key_ms,
            effective_ms: (l.effective_us / 1000) as u64,
            subscribers: l.bindings.len(),
            held: l.pending.len(),
            held_bytes: l.pending_bytes,
            released_seq: l.released,
            released: l.stats.released,
            dropped: l.stats.dropped,
            late_max_us: l.stats.late_max_us,
            late_last_us: l.stats.late_last_us,
        }
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        let held = self.inner.get_mut().pending_bytes;
        self.delays.bytes.fetch_sub(held, Ordering::Relaxed);
        self.delays.lines.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(m::DELAY_LINES).decrement(1.0);
        self.delays.gauge_bytes();
    }
}

impl Fanout {
    /// Binds `outbox` to `topic`'s delay line of `delay_ms` (created from the kept history when
    /// it is the first) and catches it up from what the line has released.
    pub(super) fn bind_delayed(
        &self,
        topic: &Topic,
        outbox: &Arc<Outbox>,
        id: SubId,
        mode: Mode,
        since: Option<u64>,
        delay_ms: u64,
    ) -> Resume {
        let mut guard = topic.inner.lock();
        let inner = &mut *guard;
        let Some(line) = self.delays.line_in(&mut inner.lines, &topic.name, delay_ms, &inner.history) else {
            return Resume::Empty;
        };
        let mut l = line.inner.lock();
        let l = &mut *l;
        let view =
            View { name: &topic.name, history: &inner.history, upto: l.released, latest: l.latest.as_ref() };
        catch_up(&mut l.bindings, &view, outbox, id, mode, since)
    }

    /// The value of `name` as it was `delay_ms` ago: what its delay line of that delay last
    /// released, or, with no such line, the newest kept publication due by now (looked for
    /// from the newest back: a read costs the messages of the last D, not the history).
    /// `None` when nothing kept is that old.
    pub fn latest_delayed(&self, name: &str, delay_ms: u64) -> Option<Pub> {
        let topic = self.topic_if_exists(name)?;
        let inner = topic.inner.lock();
        if let Some(line) = inner.lines.iter().find(|l| l.key_ms == delay_ms) {
            return line.inner.lock().latest.clone();
        }
        let delay_us = ms_to_us(self.delays.effective_ms(delay_ms));
        let now = Instant::now();
        inner.history.iter().rev().find(|p| due(p, delay_us) <= now).cloned()
    }

    /// Runs the delay lines that subscribers asked `delay_ms` of at `effective_ms` from now on
    /// (`None`: at `delay_ms` again); returns how many lines changed.
    pub fn set_delay(&self, delay_ms: u64, effective_ms: Option<u64>) -> usize {
        self.delays.set_override(delay_ms, effective_ms);
        let effective = self.delays.effective_ms(delay_ms);
        let mut changed = 0;
        for entry in self.topics.iter() {
            let inner = entry.value().inner.lock();
            for line in inner.lines.iter().filter(|l| l.key_ms == delay_ms) {
                line.set_effective(effective);
                changed += 1;
            }
        }
        changed
    }

    /// Every delay line, for the admin listing.
    pub fn delay_lines(&self) -> Vec<LineInfo> {
        let mut out = Vec::new();
        for entry in self.topics.iter() {
            out.extend(entry.value().inner.lock().lines.iter().map(|l| l.info()));
        }
        out.sort_by(|a, b| (&a.topic, a.delay_ms).cmp(&(&b.topic, b.delay_ms)));
        out
    }
}

#[cfg(test)]
mod tests;
