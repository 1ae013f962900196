//! RFC 6238 time-based one-time passwords (HMAC-SHA1, 30 s steps, 6 digits: what every
//! authenticator app reads from an `otpauth://` QR code), and the one-time backup codes.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Seconds per step.
pub const STEP: u64 = 30;
/// Steps either side of now that still count (clock drift between phone and server).
const WINDOW: u64 = 1;
/// Backup codes made at enrolment.
pub const BACKUP_CODES: usize = 10;

/// RFC 4226 HOTP of `counter`, 6 digits.
pub fn hotp(secret: &[u8], counter: u64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let h = tag.as_ref();
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    bin % 1_000_000
}

/// The step `code` (6 digits) matches at `now` (Unix seconds), within the drift window,
/// if it is later than `last` (a code is good once: replays are refused).
pub fn verify(secret: &[u8], code: &str, now: u64, last: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let want: u32 = code.parse().ok()?;
    let now_step = now / STEP;
    (now_step.saturating_sub(WINDOW)..=now_step + WINDOW)
        .filter(|&step| step > last)
        .find(|&step| constant_eq(hotp(secret, step), want))
}

fn constant_eq(a: u32, b: u32) -> bool {
    crate::auth::ct_eq(&a.to_be_bytes(), &b.to_be_bytes())
}

/// RFC 4648 base32 without padding (authenticator apps' secret format).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The `otpauth://` URI an authenticator app enrols from.
pub fn uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period={STEP}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

/// `n` random bytes.
pub fn random(n: usize) -> Result<Vec<u8>, ring::error::Unspecified> {
    let mut b = vec![0u8; n];
    SystemRandom::new().fill(&mut b)?;
    Ok(b)
}

/// A backup code: 10 characters of base32 in two groups (`ABCDE-FGHIJ`).
pub fn backup_code() -> Result<String, ring::error::Unspecified> {
    let text = base32(&random(7)?);
    Ok(format!("{}-{}", &text[..5], &text[5..10]))
}

/// What is stored of a backup code: its SHA-256, hex (codes are random: no salt needed).
pub fn digest(code: &str) -> String {
    let norm: String = code.trim().to_ascii_uppercase().chars().filter(|c| *c != '-' && *c != ' ').collect();
    let d = <sha2::Sha256 as sha2::Digest>::digest(norm.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (its 8-digit values, last 6 digits).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, want) in
            [(59, 287082), (1111111109, 81804), (1111111111, 50471), (1234567890, 5924), (2000000000, 279037)]
        {
            assert_eq!(hotp(secret, t / STEP), want, "T={t}");
        }
        assert_eq!(verify(secret, "287082", 59, 0), Some(1));
        assert_eq!(verify(secret, "287082", 59 + 30, 0), Some(1), "one step of drift");
        assert_eq!(verify(secret, "287082", 59 + 90, 0), None, "three steps late");
        assert_eq!(verify(secret, "287082", 59, 1), None, "a code is good once");
        assert_eq!(verify(secret, "28708", 59, 0), None);
        assert_eq!(verify(secret, "28708x", 59, 0), None);
    }

    #[test]
    fn base32_and_uri() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let u = uri("OpenSports Edge", "ops key", b"12345678901234567890");
        assert!(u.starts_with("otpauth://totp/OpenSports%20Edge:ops%20key?secret=GEZDGNBV"), "{u}");
        let c = backup_code().unwrap();
        assert_eq!(c.len(), 11);
        assert_eq!(digest(&c), digest(&c.to_lowercase().replace('-', "")));
    }
}
