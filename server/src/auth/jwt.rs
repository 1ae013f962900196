//! Subscriber JWTs (the `jsonwebtoken` crate): an identity provider the operator trusts signs
//! `{"sub": .., "exp": .., "topics": [pattern, ..]}`; the server checks the signature with the
//! key configured for the token's algorithm, `exp`, `nbf` when present, and `aud` / `iss` when
//! `auth.jwt_audience` / `auth.jwt_issuer` are set.
//!
//! Accepted algorithms are exactly those with a configured key: HS256 (`auth.jwt_hs256_secret`),
//! RS256 (`auth.jwt_rs256_public_key`, PEM) and EdDSA (`auth.jwt_eddsa_public_key`, PEM). The
//! key is chosen by the algorithm, and each key is only ever used with its own algorithm, so a
//! token "signed" HS256 with a public key as the secret is refused (algorithm confusion), as is
//! `alg: none` (not an algorithm the crate knows).

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::scope::{Principal, Role};
use crate::config::AuthConfig;

/// Why a JWT was refused (the message goes to the client).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("no JWT algorithm is configured on this server")]
    NotConfigured,
    #[error("JWT algorithm {0:?} is not accepted here")]
    Algorithm(String),
    #[error("JWT refused: {0}")]
    Invalid(String),
    #[error("JWT expired")]
    Expired,
    #[error("JWT not valid yet (nbf)")]
    NotYet,
    #[error("JWT topics: {0:?} is not a topic pattern")]
    BadTopic(String),
}

/// A configured key could not be loaded (start-up error).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct JwtConfigError {
    pub field: &'static str,
    pub problem: String,
}

/// The verification keys, by algorithm.
#[derive(Default)]
pub struct JwtKeys {
    /// `auth.jwt_audience` and `auth.jwt_issuer`.
    audience: Option<String>,
    issuer: Option<String>,
    hs256: Option<DecodingKey>,
    rs256: Option<DecodingKey>,
    eddsa: Option<DecodingKey>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("hs256", &self.hs256.is_some())
            .field("rs256", &self.rs256.is_some())
            .field("eddsa", &self.eddsa.is_some())
            .finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    topics: Vec<String>,
}

impl JwtKeys {
    pub fn load(cfg: &AuthConfig) -> Result<JwtKeys, JwtConfigError> {
        let read = |field: &'static str, path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| JwtConfigError { field, problem: format!("{}: {e}", path.display()) })
        };
        let mut keys = JwtKeys {
            audience: cfg.jwt_audience.clone(),
            issuer: cfg.jwt_issuer.clone(),
            ..JwtKeys::default()
        };
        if let Some(secret) = &cfg.jwt_hs256_secret {
            if secret.len() < 32 {
                let problem = "an HS256 secret must be at least 32 bytes".into();
                return Err(JwtConfigError { field: "auth.jwt_hs256_secret", problem });
            }
            let field = "auth.jwt_hs256_secret";
            let key = DecodingKey::from_secret(secret.as_bytes())
                .map_err(|e| JwtConfigError { field, problem: e.to_string() })?;
            keys.hs256 = Some(key);
        }
        let pem_key = |field: &'static str,
                       path: &std::path::Path,
                       parse: fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>| {
            parse(&read(field, path)?).map_err(|e| JwtConfigError { field, problem: e.to_string() })
        };
        if let Some(path) = &cfg.jwt_rs256_public_key {
            keys.rs256 = Some(pem_key("auth.jwt_rs256_public_key", path, DecodingKey::from_rsa_pem)?);
        }
        if let Some(path) = &cfg.jwt_eddsa_public_key {
            keys.eddsa = Some(pem_key("auth.jwt_eddsa_public_key", path, DecodingKey::from_ed_pem)?);
        }
        Ok(keys)
    }

    pub fn any(&self) -> bool {
        self.hs256.is_some() || self.rs256.is_some() || self.eddsa.is_some()
    }

    /// Verifies `token`; a subscriber principal on success.
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<Principal, JwtError> {
        if !self.any() {
            return Err(JwtError::NotConfigured);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            Algorithm::RS256 => self.rs256.as_ref(),
            Algorithm::EdDSA => self.eddsa.as_ref(),
            _ => None,
        };
        let Some(key) = key else { return Err(JwtError::Algorithm(format!("{:?}", header.alg))) };
        let mut v = Validation::new(header.alg);
        let mut required = vec!["exp"];
        v.validate_nbf = true;
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, key, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => JwtError::NotYet,
            _ => JwtError::Invalid(e.to_string()),
        })?;
        let c = data.claims;
        // `exp` and `nbf` are checked again on our own clock: the session is closed when `exp`
        // passes.
        if c.exp <= now_secs {
            return Err(JwtError::Expired);
        }
        if c.nbf.is_some_and(|nbf| nbf > now_secs) {
            return Err(JwtError::NotYet);
        }
        if c.topics.len() > 64 {
            return Err(JwtError::Invalid("at most 64 topics".into()));
        }
        if let Some(t) = c.topics.iter().find(|t| opensports_proto::topic::Pattern::parse(t).is_err()) {
            return Err(JwtError::BadTopic(t.clone()));
        }
        let sub = c.sub.unwrap_or_default();
        let sub: String = sub.chars().take(64).collect();
        Ok(Principal {
            id: Arc::from(format!("jwt:{sub}")),
            role: Some(Role::Subscriber),
            scopes: c.topics.into(),
            expires: Some(c.exp),
            key_id: None,
        })
    }
}

/// Whether a bearer credential looks like a JWT (three dot-separated parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}
