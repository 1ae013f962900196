//! Apple Push Notification service: HTTP/2 over TLS, `POST {endpoint}/3/device/{token}`,
//! authenticated with a provider token (an ES256 JWT from the team's `.p8` key, `kid` the key
//! id, `iss` the team id), made again every 50 minutes (Apple takes one for up to an hour and
//! refuses a new one more often than every 20 minutes) or when APNs says it expired.

use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::Request;

use super::http::{Http, Reply};
use super::jws::Key;
use super::{Message, Outcome};

const TOKEN_LIFE: Duration = Duration::from_secs(50 * 60);

#[derive(Debug)]
pub struct Apns {
    key: Key,
    key_id: String,
    team_id: String,
    topic: String,
    endpoint: String,
    token: parking_lot::Mutex<Option<(String, Instant)>>,
}

impl Apns {
    pub fn new(p8: &str, key_id: &str, team_id: &str, topic: &str, endpoint: &str) -> Result<Apns, String> {
        Ok(Apns {
            key: Key::es256(p8).map_err(|e| format!("APNs key: {e}"))?,
            key_id: key_id.into(),
            team_id: team_id.into(),
            topic: topic.into(),
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: parking_lot::Mutex::new(None),
        })
    }

    fn token(&self) -> Result<String, String> {
        let mut cached = self.token.lock();
        if let Some((t, made)) = cached.as_ref()
            && made.elapsed() < TOKEN_LIFE
        {
            return Ok(t.clone());
        }
        let claims = serde_json::json!({"iss": self.team_id, "iat": crate::store::now_ms() / 1000});
        let t = self.key.sign(serde_json::json!({"kid": self.key_id}), &claims)?;
        *cached = Some((t.clone(), Instant::now()));
        metrics::counter!(crate::metrics::PUSH_TOKENS_TOTAL, "provider" => "apns").increment(1);
        Ok(t)
    }

    pub async fn send(&self, http: &Http, device_token: &str, msg: &Message<'_>) -> Outcome {
        let token = match self.token() {
            Ok(t) => t,
            Err(e) => return Outcome::Rejected(e),
        };
        let mut body = serde_json::json!({
            "aps": {"alert": {"title": msg.title, "body": msg.text}, "sound": "default", "thread-id": msg.game},
        });
        for (k, v) in &msg.data {
            body[*k] = v.clone().into();
        }
        let Ok(url) = url::Url::parse(&format!("{}/3/device/{device_token}", self.endpoint)) else {
            return Outcome::Rejected("push.apns.endpoint".into());
        };
        let expires = crate::store::now_ms() / 1000 + msg.ttl_secs as i64;
        let req = Request::post("/")
            .header(hyper::header::AUTHORIZATION, format!("bearer {token}"))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-expiration", expires.to_string())
            .header("apns-collapse-id", msg.collapse_key)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()));
        let Ok(req) = req else { return Outcome::Rejected("bad request".into()) };
        match http.send_h2(&url, req).await {
            Ok(reply) => self.outcome(&reply),
            Err(e) => Outcome::Retry { reason: e, after_secs: None },
        }
    }

    /// APNs' answer: its `reason` decides (`Unregistered`, `BadDeviceToken`: the device is
    /// gone; `ExpiredProviderToken`: a new token for the retry).
    fn outcome(&self, reply: &Reply) -> Outcome {
        let doc: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let why = doc["reason"].as_str().unwrap_or("").to_string();
        let reason = format!("http {} {why}", reply.status);
        match (reply.status, why.as_str()) {
            (200, _) => Outcome::Accepted,
            (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => Outcome::Gone,
            (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
                *self.token.lock() = None;
                Outcome::Retry { reason, after_secs: None }
            }
            (429 | 500..=599, _) => Outcome::Retry { reason, after_secs: reply.retry_after() },
            _ => Outcome::Rejected(reason),
        }
    }
}
