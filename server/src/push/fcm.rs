//! Firebase Cloud Messaging, HTTP v1 API: the service account's key signs an OAuth 2.0 JWT
//! assertion (RS256), traded at its `token_uri` for an access token (cached until a minute
//! before it expires, fetched again when FCM says it is no longer good), then
//! `POST {endpoint}/v1/projects/{project_id}/messages:send` with the message.

use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::Request;
use serde::Deserialize;

use super::http::{Http, Reply};
use super::jws::Key;
use super::{Message, Outcome};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The fields of a service-account JSON file that are used.
#[derive(Debug, Deserialize)]
struct ServiceAccount {
    project_id: String,
    private_key_id: String,
    private_key: String,
    client_email: String,
    token_uri: String,
}

#[derive(Debug)]
pub struct Fcm {
    project_id: String,
    key_id: String,
    email: String,
    token_uri: String,
    endpoint: String,
    key: Key,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl Fcm {
    /// From the service-account JSON; `endpoint` (`https://fcm.googleapis.com`) and
    /// `token_uri` (the file's when empty) can point elsewhere (staging, tests).
    pub fn new(account_json: &str, endpoint: &str, token_uri: &str) -> Result<Fcm, String> {
        let a: ServiceAccount =
            serde_json::from_str(account_json).map_err(|e| format!("service account JSON: {e}"))?;
        Ok(Fcm {
            key: Key::rs256(&a.private_key).map_err(|e| format!("service account private_key: {e}"))?,
            project_id: a.project_id,
            key_id: a.private_key_id,
            email: a.client_email,
            token_uri: if token_uri.is_empty() { a.token_uri } else { token_uri.to_string() },
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// An access token, from the cache or fetched.
    async fn token(&self, http: &Http) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let now = crate::store::now_ms() / 1000;
        let claims = serde_json::json!({
            "iss": self.email, "scope": SCOPE, "aud": self.token_uri, "iat": now, "exp": now + 3600,
        });
        let assertion = self.key.sign(serde_json::json!({"kid": self.key_id}), &claims)?;
        let form =
            format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}");
        let url = url::Url::parse(&self.token_uri).map_err(|e| format!("token_uri: {e}"))?;
        let req = Request::post("/")
            .header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .map_err(|e| e.to_string())?;
        let reply = http.send(&url, req).await.map_err(|e| format!("OAuth token: {e}"))?;
        if reply.status != 200 {
            return Err(format!(
                "OAuth token: http {} {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            expires_in: u64,
        }
        let t: Token = serde_json::from_slice(&reply.body).map_err(|e| format!("OAuth token answer: {e}"))?;
        let until = Instant::now() + Duration::from_secs(t.expires_in.saturating_sub(60));
        *cached = Some((t.access_token.clone(), until));
        metrics::counter!(crate::metrics::PUSH_TOKENS_TOTAL, "provider" => "fcm").increment(1);
        Ok(t.access_token)
    }

    pub async fn send(&self, http: &Http, token: &str, msg: &Message<'_>) -> Outcome {
        let bearer = match self.token(http).await {
            Ok(t) => t,
            Err(e) => return Outcome::Retry { reason: e, after_secs: None },
        };
        let data: serde_json::Map<String, serde_json::Value> =
            msg.data.iter().map(|(k, v)| (k.to_string(), v.clone().into())).collect();
        let body = serde_json::json!({"message": {
            "token": token,
            "notification": {"title": msg.title, "body": msg.text},
            "data": data,
            "android": {"collapse_key": msg.collapse_key, "priority": "high", "ttl": format!("{}s", msg.ttl_secs)},
            "apns": {"headers": {"apns-collapse-id": msg.collapse_key}},
        }});
        let url = format!("{}/v1/projects/{}/messages:send", self.endpoint, self.project_id);
        let Ok(url) = url::Url::parse(&url) else { return Outcome::Rejected("push.fcm.endpoint".into()) };
        let req = Request::post("/")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::AUTHORIZATION, format!("Bearer {bearer}"))
            .body(Body::from(body.to_string()));
        let Ok(req) = req else { return Outcome::Rejected("bad request".into()) };
        match http.send(&url, req).await {
            Ok(reply) => self.outcome(&reply).await,
            Err(e) => Outcome::Retry { reason: e, after_secs: None },
        }
    }

    /// FCM's answer: its `errorCode` decides (`UNREGISTERED`: the app is gone).
    async fn outcome(&self, reply: &Reply) -> Outcome {
        let doc: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
        let code = doc["error"]["details"]
            .as_array()
            .and_then(|d| d.iter().find_map(|x| x["errorCode"].as_str()))
            .or(doc["error"]["status"].as_str())
            .unwrap_or("")
            .to_string();
        let reason = format!("http {} {code}", reply.status);
        match (reply.status, code.as_str()) {
            (200..=299, _) => Outcome::Accepted,
            (_, "UNREGISTERED" | "SENDER_ID_MISMATCH") | (404, _) => Outcome::Gone,
            (401, _) => {
                // The access token is no longer good: fetch another for the retry.
                *self.token.lock().await = None;
                Outcome::Retry { reason, after_secs: None }
            }
            (429 | 500..=599, _) => Outcome::Retry { reason, after_secs: reply.retry_after() },
            _ => Outcome::Rejected(reason),
        }
    }
}
