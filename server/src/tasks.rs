//! Spawned tasks that shutdown waits for (mini-redis' `shutdown_complete`): every tracked task
//! holds a clone of one channel sender; once all clones are gone, the receiver's `recv`
//! returns `None`. Nothing is sent; the channel only counts its senders.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A handle that spawns tracked tasks. Clones track into the same set.
#[derive(Debug, Clone)]
pub struct Tracker(mpsc::Sender<()>);

/// Resolves when every [`Tracker`] clone and every task spawned through one has ended.
#[derive(Debug)]
pub struct Drained(mpsc::Receiver<()>);

pub fn tracker() -> (Tracker, Drained) {
    let (tx, rx) = mpsc::channel(1);
    (Tracker(tx), Drained(rx))
}

impl Tracker {
    /// Spawns `fut` on the current runtime; shutdown waits until it has ended.
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let token = self.0.clone();
        tokio::spawn(async move {
            let out = fut.await;
            drop(token);
            out
        })
    }
}

impl Drained {
    /// Waits for every tracked task, at most `limit`. False if some were still running.
    pub async fn wait(mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.0.recv()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_tracked_task_and_only_for_them() {
        let (tracker, drained) = tracker();
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        tracker.spawn(async move {
            let _ = hold.await;
        });
        drop(tracker);
        let wait = tokio::spawn(drained.wait(Duration::from_secs(30)));
        tokio::task::yield_now().await;
        assert!(!wait.is_finished(), "a tracked task is still running");
        release.send(()).unwrap();
        assert!(wait.await.unwrap());
    }
}
