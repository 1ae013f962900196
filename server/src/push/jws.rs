//! Signed tokens the providers ask for, with `ring`: FCM's OAuth assertion (RS256, the
//! service account's key), APNs' provider token and Web Push's VAPID token (ES256, a P-256
//! key). Keys are PKCS#8 PEM, as Google, Apple and `openssl genpkey` write them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};

/// Base64url without padding (JWS, Web Push keys).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Base64url, padded or not.
pub fn unb64url(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|e| format!("base64url: {e}"))
}

/// The DER inside a `-----BEGIN PRIVATE KEY-----` block.
pub fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    let (begin, end) = ("-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----");
    let start = pem.find(begin).ok_or("not a PKCS#8 PEM key (no BEGIN PRIVATE KEY)")? + begin.len();
    let stop = pem[start..].find(end).ok_or("PEM key without its END line")? + start;
    let b64: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| format!("PEM base64: {e}"))
}

/// A signing key.
#[derive(Debug)]
pub enum Key {
    /// ECDSA P-256 with SHA-256 (`ES256`).
    Es256(EcdsaKeyPair),
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`RS256`).
    Rs256(RsaKeyPair),
}

impl Key {
    pub fn es256(pem: &str) -> Result<Key, String> {
        let der = pem_der(pem)?;
        EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
            .map(Key::Es256)
            .map_err(|e| format!("not a P-256 PKCS#8 key: {e}"))
    }

    pub fn rs256(pem: &str) -> Result<Key, String> {
        RsaKeyPair::from_pkcs8(&pem_der(pem)?)
            .map(Key::Rs256)
            .map_err(|e| format!("not an RSA PKCS#8 key: {e}"))
    }

    /// The public key's bytes (P-256: the 65-byte uncompressed point).
    pub fn public(&self) -> &[u8] {
        match self {
            Key::Es256(k) => k.public_key().as_ref(),
            Key::Rs256(k) => k.public_key().as_ref(),
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Key::Es256(_) => "ES256",
            Key::Rs256(_) => "RS256",
        }
    }

    /// A compact JWS: `header.claims.signature`, `alg` set from the key (ES256's signature is
    /// `r || s`, as JWS wants).
    pub fn sign(&self, mut header: serde_json::Value, claims: &serde_json::Value) -> Result<String, String> {
        header["alg"] = self.alg().into();
        header["typ"] = "JWT".into();
        let input =
            format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
        let rng = SystemRandom::new();
        let sig = match self {
            Key::Es256(k) => {
                k.sign(&rng, input.as_bytes()).map_err(|_| "ES256 signing failed")?.as_ref().to_vec()
            }
            Key::Rs256(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .map_err(|_| "RS256 signing failed")?;
                sig
            }
        };
        Ok(format!("{input}.{}", b64url(&sig)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn es256_tokens_verify_with_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        let key = Key::es256(&pem).unwrap();
        let token = key.sign(serde_json::json!({"kid": "K"}), &serde_json::json!({"iss": "T"})).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let public = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, key.public());
        public.verify(input.as_bytes(), &unb64url(sig).unwrap()).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&unb64url(input.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some("ES256"), Some("K")));
        assert!(Key::rs256(&pem).is_err() && Key::es256("nonsense").is_err());
    }
}
