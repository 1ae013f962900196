//! A registered device (PROTOCOL.md §3.4): where its pushes go and what it follows, checked
//! strictly before it is stored.

use serde::{Deserialize, Serialize};

/// What `POST /v1/devices` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// `webhook` (an app backend's HTTPS or HTTP endpoint). FCM, APNs and Web Push are not
    /// built yet and are refused.
    pub provider: String,
    /// The webhook's URL.
    pub url: String,
    /// `en` or `es` (the pushes' language). Default `en`.
    #[serde(default)]
    pub locale: Option<String>,
    /// Game ids followed (at least one, at most 32); the credential must may read each game's
    /// `game/{id}/triggers`.
    pub games: Vec<String>,
    /// Trigger rules wanted (`home_goal`, `lead_change`, `basketball-boxscore:run`, ...); empty:
    /// every one. At most 32.
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    /// The credential that registered it (a key id, or `jwt:{sub}`).
    pub owner: String,
    pub provider: String,
    pub url: String,
    pub locale: String,
    pub games: Vec<String>,
    pub kinds: Vec<String>,
    pub created_ms: i64,
}

impl Device {
    /// Whether a firing of `rule` in `game` is for this device.
    pub fn wants(&self, game: &str, rule: &str) -> bool {
        self.games.iter().any(|g| g == game)
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == rule))
    }
}

/// Languages pushes are written in.
pub const LOCALES: [&str; 2] = ["en", "es"];

fn id_like(s: &str, extra: &[u8]) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b) || extra.contains(&b))
}

impl NewDevice {
    /// Why this device cannot be registered, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.provider != "webhook" {
            return Err(format!(
                "provider {:?}: only webhook is available (fcm, apns and webpush are not built yet)",
                self.provider
            ));
        }
        let url = url::Url::parse(&self.url).map_err(|e| format!("url: {e}"))?;
        if self.url.len() > 512 || !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("url: an http(s) URL with a host, at most 512 bytes".into());
        }
        if let Some(l) = &self.locale
            && !LOCALES.contains(&l.as_str())
        {
            return Err(format!("locale {l:?}: one of {LOCALES:?}"));
        }
        if self.games.is_empty() || self.games.len() > 32 {
            return Err("games: 1 to 32 game ids".into());
        }
        if let Some(g) = self.games.iter().find(|g| !id_like(g, b".")) {
            return Err(format!("game {g:?}: a game id ([A-Za-z0-9_.-], 1-64)"));
        }
        if self.kinds.len() > 32 {
            return Err("kinds: at most 32".into());
        }
        if let Some(k) = self.kinds.iter().find(|k| !id_like(k, b":")) {
            return Err(format!("kind {k:?}: a trigger rule name ([A-Za-z0-9_:-], 1-64)"));
        }
        Ok(())
    }
}
