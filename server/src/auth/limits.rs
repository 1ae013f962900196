//! Per-client limits that are not a queue: backoff on wrong credentials per (source address,
//! credential),
//! a token bucket per publisher key (events/s), and connection slots per source address.
//! Plain data structures; the caller passes the clock in.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Consecutive wrong tokens from one address before it must wait.
pub const BACKOFF_AFTER: u32 = 3;
/// Longest wait imposed on an address.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// (address, credential) pairs remembered at most; past it, expired ones go first, then the
/// oldest.
pub const BACKOFF_ADDRESSES: usize = 4096;

/// Which credential was presented, for [`Backoff`]: the key id of an API key (so guessing one
/// key's secret is slowed), else the first bytes of the token's SHA-256.
pub type CredentialTag = [u8; 8];

/// Backoff on wrong credentials, per (source address, presented credential). Failures are
/// recorded only after a completed handshake (the address is real: it answered), so a spoofed
/// flood cannot lock an honest address out. After [`BACKOFF_AFTER`] failures in a row the
/// pair waits 1 s, then twice as long per further failure, up to [`BACKOFF_MAX`]; a success
/// clears it. Callers check a credential *before* the backoff: a valid credential is never
/// held back, so wrong tokens sent from the same address (a venue network, a NAT, a proxy)
/// cannot keep the real admin out.
#[derive(Debug, Default)]
pub struct Backoff {
    by_addr: std::collections::HashMap<(IpAddr, CredentialTag), Strikes>,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    until: Instant,
}

impl Backoff {
    /// `Err(wait)` while `ip` must still wait before presenting `cred` again.
    pub fn check(&self, ip: IpAddr, cred: CredentialTag, now: Instant) -> Result<(), Duration> {
        match self.by_addr.get(&(ip, cred)) {
            Some(s) if s.until > now => Err(s.until - now),
            _ => Ok(()),
        }
    }

    /// A wrong credential `cred` from `ip`.
    pub fn failed(&mut self, ip: IpAddr, cred: CredentialTag, now: Instant) {
        let pair = (ip, cred);
        if !self.by_addr.contains_key(&pair) && self.by_addr.len() >= BACKOFF_ADDRESSES {
            self.by_addr.retain(|_, s| s.until > now);
            if self.by_addr.len() >= BACKOFF_ADDRESSES
                && let Some(oldest) = self.by_addr.iter().min_by_key(|(_, s)| s.until).map(|(k, _)| *k)
            {
                self.by_addr.remove(&oldest);
            }
        }
        let s = self.by_addr.entry(pair).or_insert(Strikes { failures: 0, until: now });
        s.failures += 1;
        if s.failures >= BACKOFF_AFTER {
            let doublings = (s.failures - BACKOFF_AFTER).min(6);
            s.until = now + Duration::from_secs(1u64 << doublings).min(BACKOFF_MAX);
        }
    }

    /// A good credential `cred` from `ip`: the pair starts afresh.
    pub fn succeeded(&mut self, ip: IpAddr, cred: CredentialTag) {
        self.by_addr.remove(&(ip, cred));
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }
}

/// Events per second per publisher key: a token bucket refilled at `rate`, holding at most one
/// second's worth. An empty bucket tells the caller how long to wait (the stream then stops
/// reading: QUIC flow control slows the publisher; nothing is dropped).
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate_per_sec: u32, now: Instant) -> Bucket {
        let rate = f64::from(rate_per_sec.max(1));
        Bucket { rate, tokens: rate, last: now }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

/// Connections open at once per source address; the slot is given back on drop.
#[derive(Debug, Default)]
pub struct AddrSlots {
    open: DashMap<IpAddr, usize>,
}

/// One taken slot of [`AddrSlots`].
#[derive(Debug)]
pub struct AddrSlot {
    slots: Arc<AddrSlots>,
    ip: IpAddr,
}

impl AddrSlots {
    /// Takes a slot for `ip` unless it holds `max` already.
    pub fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddrSlot> {
        let mut n = self.open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddrSlot { slots: self.clone(), ip })
    }

    /// Addresses holding a slot now.
    pub fn addresses(&self) -> usize {
        self.open.len()
    }
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        // Remove the entry with its last slot: the map holds only addresses with connections.
        self.slots.open.remove_if_mut(&self.ip, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_tokens_back_off_their_address_and_credential_and_a_good_one_clears_it() {
        let (a, b): (std::net::IpAddr, std::net::IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let (wrong, other) = (*b"wrongkey", *b"realadmn");
        let t0 = Instant::now();
        let mut backoff = Backoff::default();
        for _ in 0..BACKOFF_AFTER - 1 {
            backoff.failed(a, wrong, t0);
        }
        assert_eq!(backoff.check(a, wrong, t0), Ok(()), "a typo or two costs nothing");
        backoff.failed(a, wrong, t0);
        assert_eq!(backoff.check(a, wrong, t0), Err(Duration::from_secs(1)));
        assert_eq!(backoff.check(b, wrong, t0), Ok(()), "other addresses are not affected");
        assert_eq!(
            backoff.check(a, other, t0),
            Ok(()),
            "other credentials from the address are not affected"
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(backoff.check(a, wrong, t1), Ok(()));
        backoff.failed(a, wrong, t1);
        assert_eq!(backoff.check(a, wrong, t1), Err(Duration::from_secs(2)), "doubling");
        for _ in 0..20 {
            backoff.failed(a, wrong, t1);
        }
        assert_eq!(backoff.check(a, wrong, t1), Err(BACKOFF_MAX));
        backoff.succeeded(a, wrong);
        assert_eq!(backoff.check(a, wrong, t1), Ok(()));
    }

    #[test]
    fn backoff_remembers_a_bounded_number_of_addresses() {
        let t0 = Instant::now();
        let mut backoff = Backoff::default();
        for i in 0..(BACKOFF_ADDRESSES as u32 + 500) {
            let ip = std::net::IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            for _ in 0..BACKOFF_AFTER {
                backoff.failed(ip, *b"sametokn", t0);
            }
        }
        assert_eq!(backoff.len(), BACKOFF_ADDRESSES);
    }

    #[test]
    fn a_bucket_gives_rate_per_second_and_says_how_long_to_wait() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, t0);
        for _ in 0..10 {
            assert_eq!(b.take(t0), Ok(()));
        }
        let wait = b.take(t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(b.take(t0 + Duration::from_millis(100)), Ok(()));
        // Idle time does not bank more than one second's worth.
        let later = t0 + Duration::from_secs(60);
        let taken = (0..100).filter(|_| b.take(later).is_ok()).count();
        assert_eq!(taken, 10);
    }

    #[test]
    fn address_slots_are_bounded_and_given_back() {
        let slots = Arc::new(AddrSlots::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let held: Vec<_> = (0..3).map(|_| slots.take(a, 3).unwrap()).collect();
        assert!(slots.take(a, 3).is_none());
        assert!(slots.take(b, 3).is_some(), "other addresses are not affected");
        drop(held);
        assert_eq!(slots.addresses(), 0, "entries go with their last slot");
        assert!(slots.take(a, 3).is_some());
    }
}
