//! Console sign-ins and sessions, in memory (a restart signs everyone out).
//!
//! A sign-in is two steps: the admin key (→ a *pending* sign-in, cookie `osc_pending`, five
//! minutes), then a TOTP or backup code (→ a *session*, cookie `osc_session`). Both cookies are
//! `HttpOnly; SameSite=Strict; Path=/` (and `Secure` over HTTPS), their values 256-bit random
//! ids. A session carries a CSRF token the page reads from `GET /console/api/session` and sends
//! as `X-CSRF-Token` on every call that changes something ([`Sessions::caller`]). Sessions end
//! after `console.session_minutes` without a request, after `console.max_session_hours` in all,
//! at sign-out, or when their key is revoked. Both tables are bounded.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;

use super::ConsoleConfig;
use crate::auth::Principal;

pub const SESSION_COOKIE: &str = "osc_session";
pub const PENDING_COOKIE: &str = "osc_pending";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a pending sign-in waits for its code.
pub const PENDING_TTL: Duration = Duration::from_secs(300);
/// Sign-ins and sessions held at once; past it new ones are refused (`429`).
pub const MAX_ENTRIES: usize = 4096;
/// Wrong codes in a row before a key's second step locks.
pub const FREE_FAILURES: u32 = 5;

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    started: Instant,
    last: Instant,
    /// A TOTP secret being enrolled (shown, not yet confirmed by a code).
    pub enrolling: Option<Vec<u8>>,
}

/// A key checked, its code awaited.
#[derive(Debug, Clone)]
pub struct Pending {
    pub principal: Principal,
    started: Instant,
    pub enrolling: Option<Vec<u8>>,
}

/// Consecutive wrong codes of one key, and until when it is locked.
#[derive(Debug, Default, Clone, Copy)]
struct Strikes {
    failures: u32,
    locked_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Sessions {
    sessions: DashMap<String, Session>,
    pending: DashMap<String, Pending>,
    strikes: Mutex<std::collections::HashMap<String, Strikes>>,
    /// Last TOTP step accepted per key (a code is good once, even across sign-ins).
    pub last_step: Mutex<std::collections::HashMap<String, u64>>,
}

/// A 256-bit random id, hex.
pub fn new_id() -> Option<String> {
    let b = super::totp::random(32).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Sessions {
    fn full(&self, cfg: &ConsoleConfig) -> bool {
        self.sweep(cfg);
        self.sessions.len() + self.pending.len() >= MAX_ENTRIES
    }

    /// Drops what has expired: sessions nobody signed out of must not fill the table.
    fn sweep(&self, cfg: &ConsoleConfig) {
        let now = Instant::now();
        self.pending.retain(|_, p| now.duration_since(p.started) < PENDING_TTL);
        self.sessions.retain(|_, s| !expired(s, cfg, now));
    }

    pub fn start_pending(&self, principal: Principal, cfg: &ConsoleConfig) -> Option<String> {
        if self.full(cfg) {
            return None;
        }
        let id = new_id()?;
        self.pending.insert(id.clone(), Pending { principal, started: Instant::now(), enrolling: None });
        Some(id)
    }

    pub fn pending(&self, id: &str) -> Option<dashmap::mapref::one::RefMut<'_, String, Pending>> {
        let p = self.pending.get_mut(id)?;
        if p.started.elapsed() >= PENDING_TTL {
            drop(p);
            self.pending.remove(id);
            return None;
        }
        Some(p)
    }

    pub fn end_pending(&self, id: &str) {
        self.pending.remove(id);
    }

    /// A new session for `principal`: its cookie id.
    pub fn start(&self, principal: Principal, cfg: &ConsoleConfig) -> Option<String> {
        if self.full(cfg) {
            return None;
        }
        let (id, csrf) = (new_id()?, new_id()?);
        let now = Instant::now();
        self.sessions
            .insert(id.clone(), Session { principal, csrf, started: now, last: now, enrolling: None });
        Some(id)
    }

    /// The live session `id`, its idle clock restarted; expired ones are removed.
    pub fn touch(
        &self,
        id: &str,
        cfg: &ConsoleConfig,
    ) -> Option<dashmap::mapref::one::RefMut<'_, String, Session>> {
        let mut s = self.sessions.get_mut(id)?;
        let now = Instant::now();
        if expired(&s, cfg, now) {
            drop(s);
            self.sessions.remove(id);
            return None;
        }
        s.last = now;
        Some(s)
    }

    pub fn end(&self, id: &str) {
        self.sessions.remove(id);
    }

    /// Seconds until the session ends if idle.
    pub fn expires_in(s: &Session, cfg: &ConsoleConfig) -> u64 {
        let idle = cfg.session_minutes * 60;
        let max = (cfg.max_session_hours * 3600).saturating_sub(s.started.elapsed().as_secs());
        idle.min(max)
    }

    /// `Some(wait)` while `key`'s code step is locked.
    pub fn locked(&self, key: &str) -> Option<Duration> {
        let strikes = self.strikes.lock();
        let until = strikes.get(key)?.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// A wrong code for `key`: past [`FREE_FAILURES`] in a row, the key's second step locks
    /// for 30 s, doubling with each further failure up to an hour. Returns the lock.
    pub fn strike(&self, key: &str, _ip: Option<IpAddr>) -> Option<Duration> {
        let mut strikes = self.strikes.lock();
        if strikes.len() >= MAX_ENTRIES && !strikes.contains_key(key) {
            let now = Instant::now();
            strikes.retain(|_, s| s.locked_until.is_some_and(|u| u > now));
        }
        let s = strikes.entry(key.to_string()).or_default();
        s.failures += 1;
        if s.failures < FREE_FAILURES {
            return None;
        }
        let wait =
            Duration::from_secs(30u64 << (s.failures - FREE_FAILURES).min(7)).min(Duration::from_secs(3600));
        s.locked_until = Some(Instant::now() + wait);
        Some(wait)
    }

    pub fn cleared(&self, key: &str) {
        self.strikes.lock().remove(key);
    }

    /// Ends every session and sign-in of a key (revoked).
    pub fn forget_key(&self, key: &str) {
        let of = |p: &Principal| p.key_id.as_deref() == Some(key);
        self.sessions.retain(|_, s| !of(&s.principal));
        self.pending.retain(|_, p| !of(&p.principal));
    }
}

/// Whether `s` has ended (idle too long, or too old) at `now`.
fn expired(s: &Session, cfg: &ConsoleConfig, now: Instant) -> bool {
    let idle = Duration::from_secs(cfg.session_minutes * 60);
    let max = Duration::from_secs(cfg.max_session_hours * 3600);
    now.duration_since(s.last) >= idle || now.duration_since(s.started) >= max
}

/// A cookie's value from a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
}

/// `Set-Cookie` for `name=value` (`max_age` seconds; 0 clears it).
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_sessions_leave_room_for_new_ones() {
        let cfg = ConsoleConfig { session_minutes: 0, ..ConsoleConfig::default() };
        let s = Sessions::default();
        for _ in 0..MAX_ENTRIES + 10 {
            assert!(s.start(Principal::anonymous(), &cfg).is_some(), "the table filled with ended sessions");
        }
        let live = ConsoleConfig::default();
        let s = Sessions::default();
        for _ in 0..MAX_ENTRIES {
            assert!(s.start(Principal::anonymous(), &live).is_some());
        }
        assert!(s.start(Principal::anonymous(), &live).is_none(), "live sessions are bounded");
        assert!(s.start_pending(Principal::anonymous(), &live).is_none());
    }
}
