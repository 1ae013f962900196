//! The per-event deadline, judged in CPU time. The epoch ticker (wall clock, [`TICK`]) says
//! when to look; what counts is the CPU time this thread spent in the call. On a busy box the
//! OS preempts a shard thread for milliseconds at a time, and a wall-clock deadline then traps
//! a healthy plugin (under the `full` load test it quarantined the box score). A call is cut
//! when it has used its budget of CPU, or when its wall time passes [`WALL_FACTOR`] times the
//! budget (a thread that gets no CPU at all still ends).
//!
//! [`TICK`]: super::engine::TICK

use std::time::{Duration, Instant};

use wasmtime::UpdateDeadline;

/// Wall-clock ceiling, as a multiple of the CPU budget.
pub const WALL_FACTOR: u32 = 100;

/// When the running call started and what it may use.
#[derive(Debug, Clone, Copy)]
pub struct CallClock {
    cpu_start: Duration,
    wall_start: Instant,
    budget: Duration,
}

impl CallClock {
    /// Starts a call with `budget` of CPU time on this thread.
    pub fn start(budget: Duration) -> CallClock {
        CallClock { cpu_start: thread_cpu_time(), wall_start: Instant::now(), budget }
    }

    /// Called when the epoch deadline passes: keep going (check again next tick) or trap.
    pub fn on_deadline(&self) -> UpdateDeadline {
        let cpu = thread_cpu_time().saturating_sub(self.cpu_start);
        if cpu < self.budget && self.wall_start.elapsed() < self.budget * WALL_FACTOR {
            UpdateDeadline::Continue(1)
        } else {
            UpdateDeadline::Interrupt
        }
    }
}

/// CPU time used by the calling thread (`CLOCK_THREAD_CPUTIME_ID`; std has no safe API for it,
/// so this is the crate's one FFI call).
#[allow(unsafe_code)]
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeping_is_not_counted_and_spinning_is() {
        let clock = CallClock::start(Duration::from_millis(5));
        // Off the CPU for 20 ms of wall time: still within its CPU budget.
        std::thread::sleep(Duration::from_millis(20));
        assert!(matches!(clock.on_deadline(), UpdateDeadline::Continue(1)));
        // Burn 10 ms of CPU: over budget.
        let start = thread_cpu_time();
        while thread_cpu_time() - start < Duration::from_millis(10) {}
        assert!(matches!(clock.on_deadline(), UpdateDeadline::Interrupt));
        // No CPU at all, but past the wall ceiling.
        let idle = CallClock::start(Duration::from_micros(100));
        std::thread::sleep(Duration::from_micros(100) * WALL_FACTOR + Duration::from_millis(2));
        assert!(matches!(idle.on_deadline(), UpdateDeadline::Interrupt));
    }
}
