//! Web Push: RFC 8030 delivery to the subscription's endpoint, the payload encrypted as RFC
//! 8291 says (`aes128gcm`, RFC 8188), the sender identified by an RFC 8292 VAPID token.
//!
//! Encryption, per push: a fresh P-256 key pair and salt; ECDH with the subscription's
//! `p256dh` key; HKDF-SHA-256 keyed by its `auth` secret gives the content key and nonce;
//! one record (the whole payload, padding delimiter `0x02`) under AES-128-GCM.

use ring::aead;
use ring::agreement;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use axum::body::Body;
use hyper::Request;

use super::http::Http;
use super::jws::{Key, b64url, unb64url};
use super::{Message, Outcome};

/// Record size announced in the header (one record carries the whole payload).
const RECORD_SIZE: u32 = 4096;
/// Largest payload sent: the record minus header, tag and delimiter, with room to spare.
pub const MAX_PAYLOAD: usize = 3072;

/// A browser's push subscription (`PushSubscription.toJSON()`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// The push service's URL for this browser (https).
    pub endpoint: String,
    pub keys: SubscriptionKeys,
    /// What the browser reports (`null` or a time); ignored.
    #[serde(default, rename = "expirationTime", skip_serializing_if = "Option::is_none")]
    pub expiration_time: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key, uncompressed, base64url (65 bytes).
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url.
    pub auth: String,
}

impl Subscription {
    /// Why it cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.endpoint).map_err(|e| format!("subscription.endpoint: {e}"))?;
        if self.endpoint.len() > 1024 || url.scheme() != "https" || url.host_str().is_none() {
            return Err("subscription.endpoint: an https URL with a host, at most 1024 bytes".into());
        }
        let p256dh = unb64url(&self.keys.p256dh).map_err(|e| format!("subscription.keys.p256dh: {e}"))?;
        if p256dh.len() != 65 || p256dh[0] != 4 {
            return Err("subscription.keys.p256dh: an uncompressed P-256 point (65 bytes, base64url)".into());
        }
        let auth = unb64url(&self.keys.auth).map_err(|e| format!("subscription.keys.auth: {e}"))?;
        if auth.len() != 16 {
            return Err("subscription.keys.auth: 16 bytes, base64url".into());
        }
        Ok(())
    }
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
    for p in parts {
        ctx.update(p);
    }
    ctx.sign()
}

/// The `aes128gcm` body for `plaintext`, to the subscription's keys.
pub fn encrypt(sub: &Subscription, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    if plaintext.len() > MAX_PAYLOAD {
        return Err(format!("payload of {} bytes, at most {MAX_PAYLOAD}", plaintext.len()));
    }
    let ua_public = unb64url(&sub.keys.p256dh)?;
    let auth = unb64url(&sub.keys.auth)?;
    let rng = SystemRandom::new();
    let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
        .map_err(|_| "cannot make a key pair")?;
    let as_public = private.compute_public_key().map_err(|_| "cannot make a key pair")?;
    let as_public = as_public.as_ref().to_vec();
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &ua_public);
    let ecdh = agreement::agree_ephemeral(private, &peer, |s| s.to_vec())
        .map_err(|_| "the subscription's p256dh key is not a valid P-256 point")?;
    // RFC 8291 §3.4.
    let prk_key = hmac256(&auth, &[&ecdh]);
    let ikm = hmac256(prk_key.as_ref(), &[b"WebPush: info\0", &ua_public, &as_public, &[1]]);
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| "no randomness")?;
    let prk = hmac256(&salt, &[ikm.as_ref()]);
    let cek = hmac256(prk.as_ref(), &[b"Content-Encoding: aes128gcm\0", &[1]]);
    let nonce = hmac256(prk.as_ref(), &[b"Content-Encoding: nonce\0", &[1]]);
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_128_GCM, &cek.as_ref()[..16]).map_err(|_| "AES key")?,
    );
    let nonce = aead::Nonce::try_assume_unique_for_key(&nonce.as_ref()[..12]).map_err(|_| "nonce")?;
    let mut record = Vec::with_capacity(plaintext.len() + 17);
    record.extend_from_slice(plaintext);
    record.push(2);
    key.seal_in_place_append_tag(nonce, aead::Aad::empty(), &mut record).map_err(|_| "AES-GCM failed")?;
    // RFC 8188 §2.1 header: salt, record size, key id (our public key).
    let mut body = Vec::with_capacity(16 + 4 + 1 + as_public.len() + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&record);
    Ok(body)
}

/// The `Authorization` header (RFC 8292 §3): a VAPID token for the endpoint's origin, valid
/// 12 hours, and the public key.
pub fn vapid(key: &Key, endpoint: &url::Url, subject: &str, now_secs: i64) -> Result<String, String> {
    let claims = serde_json::json!({
        "aud": endpoint.origin().ascii_serialization(), "exp": now_secs + 12 * 3600, "sub": subject,
    });
    let token = key.sign(serde_json::json!({}), &claims)?;
    Ok(format!("vapid t={token}, k={}", b64url(key.public())))
}

/// The sender's VAPID identity.
#[derive(Debug)]
pub struct WebPush {
    key: Key,
    subject: String,
}

impl WebPush {
    /// `pem`: a P-256 PKCS#8 key; `subject`: a `mailto:` or `https:` contact (RFC 8292 §2.1).
    pub fn new(pem: &str, subject: &str) -> Result<WebPush, String> {
        Ok(WebPush { key: Key::es256(pem).map_err(|e| format!("VAPID key: {e}"))?, subject: subject.into() })
    }

    /// The public key browsers subscribe with (`applicationServerKey`), base64url.
    pub fn public_key(&self) -> String {
        b64url(self.key.public())
    }

    pub async fn send(&self, http: &Http, sub: &Subscription, payload: &[u8], msg: &Message<'_>) -> Outcome {
        let Ok(url) = url::Url::parse(&sub.endpoint) else { return Outcome::Gone };
        let body = match encrypt(sub, payload) {
            Ok(b) => b,
            Err(e) => return Outcome::Rejected(e),
        };
        let auth = match vapid(&self.key, &url, &self.subject, crate::store::now_ms() / 1000) {
            Ok(a) => a,
            Err(e) => return Outcome::Rejected(e),
        };
        let req = Request::post("/")
            .header(hyper::header::AUTHORIZATION, auth)
            .header(hyper::header::CONTENT_ENCODING, "aes128gcm")
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .header("TTL", msg.ttl_secs.to_string())
            .header("Topic", topic(msg.collapse_key))
            .header("Urgency", "high")
            .body(Body::from(body));
        let Ok(req) = req else { return Outcome::Rejected("bad request".into()) };
        super::http::outcome(http.send(&url, req).await)
    }
}

/// The `Topic` header for a collapse key: at most 32 characters of the base64url alphabet
/// (RFC 8030 §5.4), so the key's SHA-256, shortened.
pub fn topic(collapse_key: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, collapse_key.as_bytes());
    b64url(digest.as_ref())[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload decrypted the way the receiver does it (RFC 8291 §3.4 from its side). The
    /// end-to-end test decrypts with Python's `http_ece`, an independent implementation.
    #[test]
    fn what_we_encrypt_the_receiver_decrypts() {
        let rng = SystemRandom::new();
        let ua_private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).unwrap();
        let ua_public = ua_private.compute_public_key().unwrap().as_ref().to_vec();
        let auth = [7u8; 16];
        let sub = Subscription {
            endpoint: "https://push.example/x".into(),
            keys: SubscriptionKeys { p256dh: b64url(&ua_public), auth: b64url(&auth) },
            expiration_time: None,
        };
        sub.check().unwrap();
        let body = encrypt(&sub, b"GOAL").unwrap();
        let (salt, rs, idlen) = (&body[..16], &body[16..20], body[20] as usize);
        assert_eq!((u32::from_be_bytes(rs.try_into().unwrap()), idlen), (4096, 65));
        let as_public = &body[21..21 + idlen];
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, as_public);
        let ecdh = agreement::agree_ephemeral(ua_private, &peer, |s| s.to_vec()).unwrap();
        let prk_key = hmac256(&auth, &[&ecdh]);
        let ikm = hmac256(prk_key.as_ref(), &[b"WebPush: info\0", &ua_public, as_public, &[1]]);
        let prk = hmac256(salt, &[ikm.as_ref()]);
        let cek = hmac256(prk.as_ref(), &[b"Content-Encoding: aes128gcm\0", &[1]]);
        let nonce = hmac256(prk.as_ref(), &[b"Content-Encoding: nonce\0", &[1]]);
        let key =
            aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &cek.as_ref()[..16]).unwrap());
        let mut record = body[21 + idlen..].to_vec();
        let plain = key
            .open_in_place(
                aead::Nonce::try_assume_unique_for_key(&nonce.as_ref()[..12]).unwrap(),
                aead::Aad::empty(),
                &mut record,
            )
            .unwrap();
        assert_eq!(plain, b"GOAL\x02");
        assert_eq!(topic("g1/home_goal").len(), 32);
        assert!(encrypt(&sub, &[0; MAX_PAYLOAD + 1]).is_err());
    }
}
