//! A registered device (PROTOCOL.md §3.4): where its pushes go, what it follows and when it
//! wants quiet, checked strictly before it is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::webpush::Subscription;

/// The providers.
pub const PROVIDERS: [&str; 4] = ["fcm", "apns", "webpush", "webhook"];

/// What `POST /v1/devices` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// `fcm`, `apns`, `webpush` or `webhook`.
    pub provider: String,
    /// `webhook`: the app backend's URL.
    #[serde(default)]
    pub url: Option<String>,
    /// `fcm`: the registration token; `apns`: the device token (hex).
    #[serde(default)]
    pub token: Option<String>,
    /// `webpush`: the browser's `PushSubscription` as JSON.
    #[serde(default)]
    pub subscription: Option<Subscription>,
    /// `en` or `es` (the pushes' language). Default `en`.
    #[serde(default)]
    pub locale: Option<String>,
    /// IANA time zone of the quiet hours (`Europe/Madrid`). Default `UTC`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// No push between these local times (`{"start": "22:00", "end": "07:00"}`): what comes
    /// meanwhile waits until `end`, and only the newest of each collapse key is then sent.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// Game ids followed (at most 32); the credential must may read each game's
    /// `game/{id}/triggers`.
    #[serde(default)]
    pub games: Vec<String>,
    /// Teams followed, as the games name them (`BOS`, `Liverpool`; at most 8): every game they
    /// play in, now or later. The credential must may read `game/+/triggers`. At least one game
    /// or team.
    #[serde(default)]
    pub teams: Vec<String>,
    /// Trigger rules wanted (`home_goal`, `lead_change`, `basketball-boxscore:run`, ...); empty:
    /// every one. At most 32.
    #[serde(default)]
    pub kinds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM`, local time; before `start`: the quiet spans midnight.
    pub end: String,
}

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    /// The credential that registered it (a key id, or `jwt:{sub}`).
    pub owner: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<Subscription>,
    pub locale: String,
    #[serde(default = "utc")]
    pub time_zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    pub games: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    pub kinds: Vec<String>,
    /// Each followed game's last event when the device was registered: it is pushed the
    /// moments after it, not the game's past.
    #[serde(default)]
    pub since: BTreeMap<String, u64>,
    pub created_ms: i64,
}

fn utc() -> String {
    "UTC".into()
}

impl Device {
    /// Whether this device follows `game`, whose teams are `teams` (home, away; none known:
    /// empty).
    pub fn follows(&self, game: &str, teams: &[String]) -> bool {
        self.games.iter().any(|g| g == game) || self.teams.iter().any(|t| teams.contains(t))
    }

    /// Whether a firing of `rule` at event `seq` of `game` (played by `teams`) is for this
    /// device.
    pub fn wants(&self, game: &str, teams: &[String], rule: &str, seq: u64) -> bool {
        self.follows(game, teams)
            && self.since.get(game).is_none_or(|s| seq > *s)
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == rule))
    }

    /// When the device's quiet hours end, if `now_ms` is inside them.
    pub fn quiet_until(&self, now_ms: i64) -> Option<i64> {
        let q = self.quiet_hours.as_ref()?;
        let tz = jiff::tz::TimeZone::get(&self.time_zone).ok()?;
        let (start, end) = (hhmm(&q.start).ok()?, hhmm(&q.end).ok()?);
        let now = jiff::Timestamp::from_millisecond(now_ms).ok()?.to_zoned(tz.clone());
        let t = now.time();
        let today = now.date();
        let end_day = match (start <= end, t >= start, t < end) {
            (true, true, true) => today,
            (false, true, _) => today.tomorrow().ok()?,
            (false, false, true) => today,
            _ => return None,
        };
        let until = end_day.to_datetime(end).to_zoned(tz).ok()?;
        Some(until.timestamp().as_millisecond())
    }
}

fn hhmm(s: &str) -> Result<jiff::civil::Time, String> {
    let (h, m) = s.split_once(':').ok_or("HH:MM")?;
    let (h, m): (i8, i8) = (h.parse().map_err(|_| "HH:MM")?, m.parse().map_err(|_| "HH:MM")?);
    if s.len() != 5 {
        return Err("HH:MM".into());
    }
    jiff::civil::Time::new(h, m, 0, 0).map_err(|_| "HH:MM, 00:00 to 23:59".into())
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
        let only = |field: &str| Err(format!("{}: needs {field}, and only it", self.provider));
        match (self.provider.as_str(), &self.url, &self.token, &self.subscription) {
            ("webhook", Some(url), None, None) => {
                let u = url::Url::parse(url).map_err(|e| format!("url: {e}"))?;
                if url.len() > 512 || !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                    return Err("url: an http(s) URL with a host, at most 512 bytes".into());
                }
            }
            ("webhook", ..) => return only("url"),
            ("fcm", None, Some(t), None) => {
                if !(1..=4096).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err("token: an FCM registration token (printable ASCII, 1-4096 bytes)".into());
                }
            }
            ("apns", None, Some(t), None) => {
                if !(64..=200).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("token: an APNs device token (hex, 64-200 digits)".into());
                }
            }
            ("fcm" | "apns", ..) => return only("token"),
            ("webpush", None, None, Some(s)) => s.check()?,
            ("webpush", ..) => return only("subscription"),
            (p, ..) => return Err(format!("provider {p:?}: one of {PROVIDERS:?}")),
        }
        if let Some(l) = &self.locale
            && !LOCALES.contains(&l.as_str())
        {
            return Err(format!("locale {l:?}: one of {LOCALES:?}"));
        }
        if let Some(z) = &self.time_zone
            && (z.len() > 64 || jiff::tz::TimeZone::get(z).is_err())
        {
            return Err(format!("time_zone {z:?}: an IANA time zone (Europe/Madrid)"));
        }
        if let Some(q) = &self.quiet_hours {
            hhmm(&q.start).map_err(|e| format!("quiet_hours.start: {e}"))?;
            hhmm(&q.end).map_err(|e| format!("quiet_hours.end: {e}"))?;
            if q.start == q.end {
                return Err("quiet_hours: start and end differ".into());
            }
        }
        if self.games.len() > 32 || self.teams.len() > 8 || self.games.is_empty() && self.teams.is_empty() {
            return Err("games: at most 32 game ids, teams at most 8, and at least one of them".into());
        }
        let team_like = |t: &String| {
            (1..=64).contains(&t.len()) && t.chars().all(|c| c.is_alphanumeric() || " .'&_-".contains(c))
        };
        if let Some(t) = self.teams.iter().find(|t| !team_like(t)) {
            return Err(format!("team {t:?}: a team as games name it (letters, digits, \" .'&_-\", 1-64)"));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn device(zone: &str, start: &str, end: &str) -> Device {
        Device {
            id: "d".into(),
            owner: "o".into(),
            provider: "fcm".into(),
            url: None,
            token: Some("t".into()),
            subscription: None,
            locale: "en".into(),
            time_zone: zone.into(),
            quiet_hours: Some(QuietHours { start: start.into(), end: end.into() }),
            games: vec!["g".into()],
            teams: vec!["BOS".into()],
            kinds: vec![],
            since: BTreeMap::from([("g".into(), 10)]),
            created_ms: 0,
        }
    }

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn quiet_hours_are_local_and_may_span_midnight() {
        // Madrid is UTC+1 in January: 22:00-07:00 local is 21:00-06:00 UTC.
        let d = device("Europe/Madrid", "22:00", "07:00");
        assert_eq!(d.quiet_until(ms("2026-01-10T20:59:00Z")), None);
        assert_eq!(d.quiet_until(ms("2026-01-10T21:00:00Z")), Some(ms("2026-01-11T06:00:00Z")));
        assert_eq!(d.quiet_until(ms("2026-01-11T05:30:00Z")), Some(ms("2026-01-11T06:00:00Z")));
        assert_eq!(d.quiet_until(ms("2026-01-11T06:00:00Z")), None);
        // And UTC+2 in July.
        assert_eq!(d.quiet_until(ms("2026-07-10T20:30:00Z")), Some(ms("2026-07-11T05:00:00Z")));
        let day = device("UTC", "13:00", "15:00");
        assert_eq!(day.quiet_until(ms("2026-01-10T14:00:00Z")), Some(ms("2026-01-10T15:00:00Z")));
        assert_eq!(day.quiet_until(ms("2026-01-10T16:00:00Z")), None);
    }

    #[test]
    fn a_device_gets_what_follows_its_registration() {
        let d = device("UTC", "13:00", "15:00");
        let none: &[String] = &[];
        assert!(!d.wants("g", none, "home_goal", 10) && d.wants("g", none, "home_goal", 11));
        assert!(!d.wants("h", none, "x", 99), "another game");
        assert!(d.wants("h", &["NYK".into(), "BOS".into()], "x", 1), "its team's game");
    }

    #[test]
    fn each_provider_takes_its_own_address_only() {
        let base = NewDevice {
            provider: "apns".into(),
            url: None,
            token: Some("ab".repeat(32)),
            subscription: None,
            locale: None,
            time_zone: Some("America/New_York".into()),
            quiet_hours: Some(QuietHours { start: "23:00".into(), end: "06:30".into() }),
            games: vec!["g1".into()],
            teams: vec![],
            kinds: vec![],
        };
        base.check().unwrap();
        let bad = |f: &dyn Fn(&mut NewDevice)| {
            let mut d = base.clone();
            f(&mut d);
            d.check().unwrap_err()
        };
        assert!(bad(&|d| d.token = Some("xyz".into())).contains("hex"));
        assert!(bad(&|d| d.url = Some("https://x/y".into())).contains("only"));
        assert!(bad(&|d| d.provider = "hms".into()).contains("one of"));
        assert!(bad(&|d| d.time_zone = Some("Mars/Olympus".into())).contains("time_zone"));
        assert!(
            bad(&|d| d.quiet_hours = Some(QuietHours { start: "25:00".into(), end: "06:00".into() }))
                .contains("quiet_hours.start")
        );
        assert!(bad(&|d| d.provider = "webpush".into()).contains("subscription"));
        assert!(bad(&|d| d.games.clear()).contains("at least one"));
        assert!(bad(&|d| d.teams = vec!["<script>".into()]).contains("team"));
        let mut teams = base.clone();
        teams.games.clear();
        teams.teams = vec!["Green Bay".into()];
        teams.check().unwrap();
    }
}
