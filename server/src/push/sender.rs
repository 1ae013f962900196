//! The sender: takes what is due from the outbox's index, at most `concurrency` attempts in
//! flight, and records each outcome (in batches: one commit per pass, so 100,000 pushes are
//! not 100,000 commits; an outcome lost to a crash means the push is tried again, under the
//! same key).
//!
//! Before an attempt: a device in its quiet hours, or past `max_per_game_per_minute` pushes
//! for the game, has the push held until then; a held push that a newer one of the same
//! collapse key has followed is superseded, not sent (the lock screen would replace it).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Entry, Outcome, Push, State};
use crate::metrics as m;
use crate::store::now_ms;

const MINUTE_MS: i64 = 60_000;

/// Sends per (device, game) in the last minute.
#[derive(Debug, Default)]
pub(super) struct Rate(HashMap<(String, String), VecDeque<i64>>);

impl Rate {
    /// When the next push may go, if not now; else counts this one.
    pub(super) fn take(&mut self, device: &str, game: &str, max: usize, now: i64) -> Option<i64> {
        let sent = self.0.entry((device.to_string(), game.to_string())).or_default();
        while sent.front().is_some_and(|t| *t <= now - MINUTE_MS) {
            sent.pop_front();
        }
        if sent.len() >= max.max(1) {
            return sent.front().map(|t| t + MINUTE_MS);
        }
        sent.push_back(now);
        None
    }
}

impl Push {
    /// The wait before attempt `tries + 1`: `backoff_ms · 2^tries`, capped, plus up to 50%
    /// jitter; a `Retry-After` instead when the provider gave one (capped the same).
    pub(super) fn backoff(&self, tries: u32, retry_after_secs: Option<u64>) -> i64 {
        let cap = self.cfg.max_backoff_ms;
        let ms = match retry_after_secs {
            Some(s) => s.saturating_mul(1000).min(cap),
            None => {
                let base = self.cfg.backoff_ms.saturating_mul(1u64 << tries.min(30)).min(cap);
                let mut r = [0u8; 8];
                let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
                base + u64::from_le_bytes(r) % (base / 2 + 1)
            }
        };
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// Queued entries due by `now` (at most `limit`), taken out of the index (an attempt puts
    /// back what is still queued after it), and when the next one is due.
    fn take_due(&self, now: i64, limit: usize) -> (Vec<String>, Option<i64>) {
        let mut index = self.index.lock();
        let mut keys = Vec::new();
        while keys.len() < limit {
            match index.due.first() {
                Some((at, _)) if *at <= now => {
                    if let Some((_, k)) = index.due.pop_first() {
                        keys.push(k);
                    }
                }
                _ => break,
            }
        }
        (keys, index.due.first().map(|(at, _)| *at))
    }

    /// Whether a held entry has been followed by a newer one of its collapse key.
    pub(super) fn superseded(&self, e: &Entry) -> bool {
        e.held && self.index.lock().newest.get(&e.collapse()).is_some_and(|n| *n > e.seq())
    }

    /// Whether this node sends `e`'s firing (`game|rule|seq`: its key after the device), asking
    /// the cluster once per firing.
    async fn claim(&self, cluster: &Arc<dyn super::Claims>, e: &Entry) -> Result<bool, String> {
        let firing = e.key.split_once('|').map_or(e.key.as_str(), |(_, f)| f).to_string();
        if let Some(ours) = self.claimed.lock().get(&firing) {
            return Ok(*ours);
        }
        let ours = cluster.claim(&firing).await?;
        let mut claimed = self.claimed.lock();
        if claimed.len() >= 65_536 {
            claimed.clear();
        }
        claimed.insert(firing, ours);
        Ok(ours)
    }

    /// One attempt at `e` (or its hold, or its supersession); the entry as it now stands.
    async fn attempt(self: Arc<Self>, mut e: Entry, rate: Arc<Mutex<Rate>>) -> Entry {
        let now = now_ms();
        let Some(device) = self.devices.read().get(&e.device).cloned() else {
            e.state = State::Dead;
            e.reason = Some("device removed".into());
            e.at_ms = now;
            metrics::counter!(m::PUSH_DEAD_TOTAL).increment(1);
            return e;
        };
        if self.superseded(&e) {
            e.state = State::Superseded;
            e.at_ms = now;
            metrics::counter!(m::PUSH_SUPERSEDED_TOTAL).increment(1);
            return e;
        }
        let game = e.body["game"].as_str().unwrap_or("").to_string();
        let hold = match device.quiet_until(now) {
            Some(until) => Some((until, "quiet hours")),
            None => rate
                .lock()
                .take(&device.id, &game, self.cfg.max_per_game_per_minute, now)
                .map(|at| (at, "rate limit")),
        };
        if let Some((until, why)) = hold {
            e.held = true;
            e.at_ms = until;
            e.reason = Some(format!("held: {why}"));
            let label = if why == "quiet hours" { "quiet_hours" } else { "rate_limit" };
            metrics::counter!(m::PUSH_HELD_TOTAL, "reason" => label).increment(1);
            return e;
        }
        if let Some(cluster) = self.cluster.get() {
            match self.claim(cluster, &e).await {
                Ok(true) => {}
                Ok(false) => {
                    e.state = State::Superseded;
                    e.reason = Some("sent by another node (cluster claim)".into());
                    e.at_ms = now;
                    metrics::counter!(m::PUSH_SUPERSEDED_TOTAL).increment(1);
                    return e;
                }
                Err(err) => {
                    e.reason = Some(format!("cluster claim: {err}"));
                    e.at_ms = now + self.backoff(0, None);
                    return e;
                }
            }
        }
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let outcome = match tokio::time::timeout(timeout, self.providers.send(&device, &e)).await {
            Ok(o) => o,
            Err(_) => Outcome::Retry { reason: "timeout".into(), after_secs: None },
        };
        e.tries += 1;
        e.at_ms = now_ms();
        let provider = device.provider.clone();
        match outcome {
            Outcome::Accepted => {
                e.state = State::Sent;
                e.reason = None;
                metrics::counter!(m::PUSH_SENT_TOTAL, "provider" => provider).increment(1);
                if let Some(ts_us) = e.body["ts"].as_i64() {
                    // The event's source time (µs) to the provider's acceptance.
                    let secs = (e.at_ms - ts_us / 1000).max(0) as f64 / 1000.0;
                    metrics::histogram!(m::PUSH_LATENCY_SECONDS).record(secs);
                }
            }
            Outcome::Gone => {
                e.state = State::Dead;
                e.reason = Some("gone: device removed".into());
                metrics::counter!(m::PUSH_FAILED_TOTAL, "reason" => "gone").increment(1);
                metrics::counter!(m::PUSH_DEAD_TOTAL).increment(1);
                if let Err(err) = self.remove(&device.id, None) {
                    tracing::error!(error = %err, "cannot remove a gone device");
                }
            }
            Outcome::Rejected(why) => {
                e.state = State::Dead;
                e.reason = Some(why);
                metrics::counter!(m::PUSH_FAILED_TOTAL, "reason" => "rejected").increment(1);
                metrics::counter!(m::PUSH_DEAD_TOTAL).increment(1);
            }
            Outcome::Retry { reason, after_secs } => {
                let label = if after_secs.is_some() { "throttled" } else { "unavailable" };
                metrics::counter!(m::PUSH_FAILED_TOTAL, "reason" => label).increment(1);
                e.reason = Some(reason);
                if e.tries >= self.cfg.max_tries {
                    e.state = State::Dead;
                    metrics::counter!(m::PUSH_DEAD_TOTAL).increment(1);
                } else {
                    e.at_ms += self.backoff(e.tries - 1, after_secs);
                }
            }
        }
        e
    }

    /// Records finished attempts in one commit, and puts back in the index what is still
    /// queued.
    async fn record(self: &Arc<Self>, done: Vec<Entry>) {
        if done.is_empty() {
            return;
        }
        let push = self.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let r = push.save(&done);
            (r, done)
        })
        .await;
        let Ok((r, done)) = saved else { return };
        if let Err(err) = r {
            tracing::error!(error = %err, "cannot record push attempts: they will be tried again");
        }
        let mut index = self.index.lock();
        for e in &done {
            index.add(e);
        }
        metrics::gauge!(m::PUSH_QUEUED).set(index.due.len() as f64);
    }

    /// The sender: attempts what is due, at most `concurrency` at once, until `shutdown`.
    pub async fn run_sender(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let rate = Arc::new(Mutex::new(Rate::default()));
        let mut running: JoinSet<Entry> = JoinSet::new();
        let mut last_prune = std::time::Instant::now();
        let max = self.cfg.concurrency.max(1);
        loop {
            let now = now_ms();
            let (keys, next) = self.take_due(now, max - running.len());
            if !keys.is_empty() {
                let push = self.clone();
                let loaded = tokio::task::spawn_blocking(move || push.load(&keys)).await;
                match loaded {
                    Ok(Ok(entries)) => {
                        for e in entries.into_iter().filter(|e| e.state == State::Queued) {
                            running.spawn(self.clone().attempt(e, rate.clone()));
                        }
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot read the push outbox"),
                    Err(e) => tracing::error!(error = %e, "cannot read the push outbox"),
                }
            }
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = std::time::Instant::now();
                let push = self.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || push.prune()).await {
                    tracing::warn!(error = %e, "cannot prune the push outbox");
                }
            }
            let full = running.len() >= max;
            let wait = match next {
                Some(at) if !full => {
                    Duration::from_millis(u64::try_from(at - now).unwrap_or(0).clamp(1, 1000))
                }
                _ => Duration::from_secs(1),
            };
            tokio::select! {
                Some(first) = running.join_next(), if !running.is_empty() => {
                    let mut done: Vec<Entry> = first.into_iter().collect();
                    while let Some(r) = running.try_join_next() {
                        done.extend(r);
                    }
                    self.record(done).await;
                }
                _ = self.wake.notified(), if !full => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
