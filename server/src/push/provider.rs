//! One push to one device, through its provider: the message every provider is given, what
//! an attempt came to, and the configured providers.

use std::path::Path;

use super::apns::Apns;
use super::device::Device;
use super::fcm::Fcm;
use super::http::Http;
use super::webpush::WebPush;
use super::{Entry, PushConfig, webhook};

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The provider took it.
    Accepted,
    /// Try again later: 429, 5xx, no answer, a timeout; `Retry-After` seconds when given.
    Retry { reason: String, after_secs: Option<u64> },
    /// The device is gone (FCM `UNREGISTERED`, APNs 410, Web Push and webhooks 404/410): it
    /// is removed.
    Gone,
    /// Refused for good (another 4xx): the push is not retried.
    Rejected(String),
}

/// A push as every provider gets it.
#[derive(Debug)]
pub struct Message<'a> {
    pub game: &'a str,
    pub title: &'a str,
    pub text: &'a str,
    /// Same key, same slot on the lock screen: a newer push replaces the older.
    pub collapse_key: &'a str,
    pub ttl_secs: u64,
    /// String key/values carried beside the notification (FCM `data`, APNs custom keys).
    pub data: Vec<(&'static str, String)>,
}

/// The providers this server is configured for.
#[derive(Debug)]
pub struct Providers {
    http: Http,
    webhook_secret: Vec<u8>,
    fcm: Option<Fcm>,
    apns: Option<Apns>,
    webpush: Option<WebPush>,
    ttl_secs: u64,
}

fn read(what: &str, path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

impl Providers {
    pub fn new(cfg: &PushConfig) -> Result<Providers, String> {
        let ca = match &cfg.ca_file {
            Some(p) => Some(read("push.ca_file", p)?),
            None => None,
        };
        let fcm = match &cfg.fcm.service_account_file {
            Some(p) => Some(Fcm::new(
                &read("push.fcm.service_account_file", p)?,
                &cfg.fcm.endpoint,
                &cfg.fcm.token_uri,
            )?),
            None => None,
        };
        let apns = match &cfg.apns.key_file {
            Some(p) => {
                let a = &cfg.apns;
                if a.key_id.is_empty() || a.team_id.is_empty() || a.topic.is_empty() {
                    return Err("push.apns: key_file needs key_id, team_id and topic".into());
                }
                Some(Apns::new(
                    &read("push.apns.key_file", p)?,
                    &a.key_id,
                    &a.team_id,
                    &a.topic,
                    &a.endpoint,
                )?)
            }
            None => None,
        };
        let webpush = match &cfg.webpush.vapid_key_file {
            Some(p) => Some(WebPush::new(&read("push.webpush.vapid_key_file", p)?, &cfg.webpush.subject)?),
            None => None,
        };
        Ok(Providers {
            http: Http::new(ca.as_deref().map(str::as_bytes), cfg.allow_private_endpoints)?,
            webhook_secret: cfg.webhook_secret.as_bytes().to_vec(),
            fcm,
            apns,
            webpush,
            ttl_secs: cfg.ttl_secs,
        })
    }

    /// Why devices of `provider` cannot be registered, if they cannot.
    pub fn unavailable(&self, provider: &str) -> Option<String> {
        let off = |setting: &str| Some(format!("{provider} pushes are off: {setting} is not set"));
        match provider {
            "webhook" if self.webhook_secret.is_empty() => off("push.webhook_secret"),
            "fcm" if self.fcm.is_none() => off("push.fcm.service_account_file"),
            "apns" if self.apns.is_none() => off("push.apns.key_file"),
            "webpush" if self.webpush.is_none() => off("push.webpush.vapid_key_file"),
            _ => None,
        }
    }

    /// The VAPID public key browsers subscribe with, when Web Push is on.
    pub fn vapid_public_key(&self) -> Option<String> {
        self.webpush.as_ref().map(WebPush::public_key)
    }

    /// One attempt at `e` for `device`.
    pub async fn send(&self, device: &Device, e: &Entry) -> Outcome {
        let b = &e.body;
        let s = |k: &str| b[k].as_str().unwrap_or("");
        let msg = Message {
            game: s("game"),
            title: s("title"),
            text: s("text"),
            collapse_key: s("collapse_key"),
            ttl_secs: self.ttl_secs,
            data: vec![
                ("push_id", e.key.clone()),
                ("game", s("game").to_string()),
                ("rule", s("rule").to_string()),
                ("seq", b["seq"].to_string()),
            ],
        };
        let no = |p: &str| Outcome::Rejected(format!("{p} is not configured"));
        match (device.provider.as_str(), &device.token, &device.subscription) {
            ("webhook", _, _) => {
                let body = serde_json::to_vec(b).unwrap_or_default();
                webhook::send(
                    &self.http,
                    device.url.as_deref().unwrap_or(""),
                    body,
                    &e.key,
                    &self.webhook_secret,
                )
                .await
            }
            ("fcm", Some(t), _) => match &self.fcm {
                Some(f) => f.send(&self.http, t, &msg).await,
                None => no("fcm"),
            },
            ("apns", Some(t), _) => match &self.apns {
                Some(a) => a.send(&self.http, t, &msg).await,
                None => no("apns"),
            },
            ("webpush", _, Some(sub)) => match &self.webpush {
                Some(w) => {
                    let payload = serde_json::to_vec(b).unwrap_or_default();
                    w.send(&self.http, sub, &payload, &msg).await
                }
                None => no("webpush"),
            },
            (p, _, _) => Outcome::Rejected(format!("device without a {p} address")),
        }
    }
}
