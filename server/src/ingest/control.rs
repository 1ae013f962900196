//! The control stream's outgoing side (PROTOCOL.md §1.2): acks (coalesced per game) and
//! rejects wait here for the connection's control writer. The connection (`conn`) and its event
//! streams (`stream`) both write through it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use opensports_proto::codec;
use opensports_proto::control::Control;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use super::admission::Reject;
use crate::metrics as m;
use crate::store::Health;

/// Rejects held for the control writer; beyond this they are only counted.
const MAX_PENDING_REJECTS: usize = 256;

/// Acks and rejects waiting for the control writer. Acks coalesce per game (cumulative).
#[derive(Debug, Default)]
pub struct ControlOut {
    pending: Mutex<Pending>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    acks: HashMap<String, u64>,
    rejects: VecDeque<Control>,
}

impl ControlOut {
    /// Records that every event of `game` up to `seq` is accepted.
    pub fn ack(&self, game: &str, seq: u64) {
        {
            let mut p = self.pending.lock();
            match p.acks.get_mut(game) {
                Some(s) => *s = (*s).max(seq),
                None => {
                    p.acks.insert(game.to_string(), seq);
                }
            }
        }
        self.notify.notify_one();
    }

    /// Queues a reject or error message for the publisher.
    pub fn send(&self, msg: Control) {
        {
            let mut p = self.pending.lock();
            if p.rejects.len() >= MAX_PENDING_REJECTS {
                return;
            }
            p.rejects.push_back(msg);
        }
        self.notify.notify_one();
    }

    /// Refuses one event (or datagram): counted in `opensports_ingest_rejected_total{reason}`.
    pub fn reject(&self, r: Reject) {
        metrics::counter!(m::INGEST_REJECTED_TOTAL, "reason" => r.code).increment(1);
        self.send(r.into_control());
    }

    fn take(&self, out: &mut Vec<Control>) {
        let mut p = self.pending.lock();
        out.extend(p.rejects.drain(..));
        out.extend(p.acks.drain().map(|(game, seq)| Control::Ack { game, seq }));
    }
}

impl crate::store::AckSink for ControlOut {
    fn ack(&self, game: &str, seq: u64) {
        ControlOut::ack(self, game, seq);
    }
}

pub(super) async fn write_control(send: &mut quinn::SendStream, msgs: &[Control]) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for msg in msgs {
        codec::write_json_frame(&mut buf, msg).map_err(std::io::Error::other)?;
    }
    send.write_all(&buf).await.map_err(std::io::Error::other)
}

/// Writes acks and rejects as they come, and the log's health on each change (and at once
/// when it is failing as the publisher connects).
pub(super) async fn control_writer(
    mut send: quinn::SendStream,
    control: Arc<ControlOut>,
    mut health: Option<watch::Receiver<Health>>,
) {
    let mut batch = Vec::new();
    let mut told = Health::Open;
    loop {
        batch.clear();
        if let Some(h) = &mut health {
            let now = h.borrow_and_update().clone();
            if now != told {
                let reason = match &now {
                    Health::Failing(why) => Some(why.clone()),
                    Health::Open => None,
                };
                batch.push(Control::Log { status: now.name().to_string(), reason });
                told = now;
            }
        }
        control.take(&mut batch);
        if !batch.is_empty() && write_control(&mut send, &batch).await.is_err() {
            return;
        }
        let changed = async {
            match &mut health {
                Some(h) => h.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = control.notify.notified() => {}
            // The log is gone (shutting down): only acks and rejects from here on.
            alive = changed => if !alive { health = None },
        }
    }
}
