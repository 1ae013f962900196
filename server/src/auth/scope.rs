//! What a credential allows: roles, scopes and the checks on them. Pure functions, no I/O.
//!
//! - A publisher's scopes are **game-id patterns**: `*` matches any run of characters
//!   (`nba-*`, `*-2025-*`, `*`). An event for a game no pattern matches is refused `forbidden`.
//! - A subscriber's scopes are **topic patterns** in the WebSocket syntax (`+` one level, `#`
//!   the rest). A `sub` pattern is allowed when one scope *covers* it: every topic the pattern
//!   can match is matched by the scope (so `game/+/state` is covered by `game/#` but not by
//!   `game/nba-1/#`). Checked once at `sub`, never per message.
//! - A game belongs to the publisher identity whose event created it (recorded in the log).
//!   Another publisher may write it only through a **`shared:` scope** (`shared:nba-*`): the
//!   pattern then also matches games other keys created. A plain pattern writes only games
//!   the key created or that nobody holds yet.
//! - Admin may do everything.

use std::sync::Arc;

use opensports_proto::topic::Pattern;
use serde::{Deserialize, Serialize};

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Writes events (QUIC) for the games its scopes match.
    Publisher,
    /// Reads the topics its scopes cover (WebSocket, `GET /v1/games/{id}`).
    Subscriber,
    /// Everything, including plugin upload, model roles, backup, export, keys and the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "publisher" => Ok(Role::Publisher),
            "subscriber" => Ok(Role::Subscriber),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role {s:?} (publisher, subscriber or admin)")),
        }
    }
}

/// Who is asking, as the checks see it.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Key id, `jwt:{sub}`, `token-{hex}` (a static token) or `anonymous`: audit and logs name it.
    pub id: Arc<str>,
    /// `None`: anonymous (reads `auth.public_topics` only).
    pub role: Option<Role>,
    /// Game-id patterns (publisher) or topic patterns (subscriber); unused for admin.
    pub scopes: Arc<[String]>,
    /// Unix seconds after which the credential is void (JWTs).
    pub expires: Option<u64>,
    /// The API key behind it, watched for revocation.
    pub key_id: Option<Arc<str>>,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal { id: "anonymous".into(), role: None, scopes: Arc::new([]), expires: None, key_id: None }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Some(Role::Admin)
    }

    /// May write events of `game` (if it holds the game or nobody does; see [`Self::may_share`]).
    pub fn may_write(&self, game: &str) -> bool {
        match self.role {
            Some(Role::Admin) => true,
            Some(Role::Publisher) => {
                self.scopes.iter().any(|s| glob_matches(s.strip_prefix(SHARED).unwrap_or(s), game))
            }
            _ => false,
        }
    }

    /// May write `game` although another identity created it: admin, or a `shared:` scope.
    pub fn may_share(&self, game: &str) -> bool {
        match self.role {
            Some(Role::Admin) => true,
            Some(Role::Publisher) => {
                self.scopes.iter().filter_map(|s| s.strip_prefix(SHARED)).any(|s| glob_matches(s, game))
            }
            _ => false,
        }
    }

    /// May subscribe to `pattern` (`public`: the patterns anyone may read).
    pub fn may_read(&self, pattern: &str, public: &[String]) -> bool {
        if self.is_admin() || public.iter().any(|s| covers(s, pattern)) {
            return true;
        }
        self.role == Some(Role::Subscriber) && self.scopes.iter().any(|s| covers(s, pattern))
    }
}

/// A game-id pattern: `*` matches any run of characters, everything else itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // Classic two-pointer wildcard match, linear in practice, no recursion.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The prefix of a publisher scope that also writes games other keys created.
pub const SHARED: &str = "shared:";

/// A game-id pattern is 1..=64 bytes of the game-id alphabet plus `*`, optionally after
/// [`SHARED`].
pub fn valid_game_pattern(p: &str) -> bool {
    let p = p.strip_prefix(SHARED).unwrap_or(p);
    !p.is_empty()
        && p.len() <= 64
        && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'))
}

/// Whether topic pattern `scope` matches every topic `pattern` can match.
pub fn covers(scope: &str, pattern: &str) -> bool {
    let (Ok(_), Ok(_)) = (Pattern::parse(scope), Pattern::parse(pattern)) else { return false };
    let mut want = pattern.split('/');
    for s in scope.split('/') {
        if s == "#" {
            return true;
        }
        match want.next() {
            // `#` in the pattern reaches levels only a `#` scope covers.
            None | Some("#") => return false,
            Some("+") if s != "+" => return false,
            Some(w) if s != "+" && s != w => return false,
            Some(_) => {}
        }
    }
    want.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn game_globs() {
        assert!(glob_matches("*", "nba-1"));
        assert!(glob_matches("nba-*", "nba-0022400061"));
        assert!(!glob_matches("nba-*", "nfl-1"));
        assert!(glob_matches("*-2025-*", "nfl-2025-week1"));
        assert!(glob_matches("nba-1", "nba-1"));
        assert!(!glob_matches("nba-1", "nba-10"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxbyy"));
        assert!(valid_game_pattern("nba-*") && !valid_game_pattern("a/b") && !valid_game_pattern(""));
    }

    #[test]
    fn topic_scopes_cover_patterns() {
        assert!(covers("#", "game/+/state"));
        assert!(covers("game/#", "game/+/state"));
        assert!(covers("game/nba-1/#", "game/nba-1/state"));
        assert!(covers("game/nba-1/#", "game/nba-1/#"));
        assert!(!covers("game/nba-1/#", "game/+/state"));
        assert!(!covers("game/nba-1/#", "#"));
        assert!(covers("game/+/state", "game/nba-1/state"));
        assert!(covers("game/+/state", "game/+/state"));
        assert!(!covers("game/+/state", "game/+/#"));
        assert!(!covers("game/nba-1/state", "game/nba-1/state/x"));
        assert!(covers("games", "games"));
        assert!(!covers("games", "game/x/state"));
        assert!(!covers("bad//scope", "games"));
    }

    #[test]
    fn roles_decide() {
        let p = |role, scopes: &[&str]| Principal {
            id: "k".into(),
            role: Some(role),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires: None,
            key_id: None,
        };
        let public = vec!["games".to_string()];
        let publisher = p(Role::Publisher, &["nba-*"]);
        assert!(publisher.may_write("nba-1") && !publisher.may_write("nfl-1"));
        assert!(!publisher.may_share("nba-1"), "a plain scope writes only its own games");
        let sharer = p(Role::Publisher, &["shared:nba-*"]);
        assert!(sharer.may_write("nba-1") && sharer.may_share("nba-1") && !sharer.may_share("nfl-1"));
        assert!(valid_game_pattern("shared:nba-*") && !valid_game_pattern("shared:"));
        assert!(!publisher.may_read("game/nba-1/state", &public));
        assert!(publisher.may_read("games", &public));
        let sub = p(Role::Subscriber, &["game/nba-1/#"]);
        assert!(!sub.may_write("nba-1"));
        assert!(sub.may_read("game/nba-1/score", &public) && !sub.may_read("game/nba-2/score", &public));
        let admin = p(Role::Admin, &[]);
        assert!(admin.may_write("x") && admin.may_read("#", &[]));
        let anon = Principal::anonymous();
        assert!(anon.may_read("games", &public) && !anon.may_read("#", &public) && !anon.may_write("x"));
    }
}
