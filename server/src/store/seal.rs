//! Encryption at rest: every value of the log's `events`, `games`, `snapshots` and `reports`
//! tables sealed with XChaCha20-Poly1305 under the operator's keys.
//!
//! A sealed value is `[MAGIC, VERSION] key_id(u16 BE) nonce(24) ciphertext tag(16)`, with
//! the table, the game and the seq (0 outside `events`) as associated data: a record moved to
//! another key, game or seq fails to open instead of reading as someone else's.
//!
//! XChaCha20-Poly1305 rather than AES-256-GCM: its 192-bit nonce holds a fresh random 128-bit
//! prefix per process and a 64-bit counter, so nothing has to be persisted across a `kill -9`
//! and nonces never repeat in practice, where GCM's 96-bit nonces would need a counter kept
//! on disk or cap one key at about 2^32 random ones (a few days of a busy venue).
//!
//! Keys come from a keyring (`[store.encryption]`): lines `ID HEX` (ID 1-65535, 32 bytes as
//! 64 hex digits), the last line the one new writes use; older lines only open what they
//! sealed until `opensports rekey` rewrites it under the newest.

use std::borrow::Cow;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::config::EncryptionConfig;

/// The tables whose values are sealed (the associated data's first part).
pub const T_EVENTS: &str = "events";
pub const T_GAMES: &str = "games";
pub const T_SNAPSHOTS: &str = "snapshots";
pub const T_REPORTS: &str = "reports";
/// The marker `meta["seal"]` holds on an encrypted log (see [`Seal::check`]).
pub const T_META: &str = "meta";
const MARKER: &[u8] = b"opensports sealed log";

const MAGIC: u8 = 0xE5;
const VERSION: u8 = 1;
const HEADER: usize = 2 + 2 + 24;

/// Why a keyring could not be read or a value not opened.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SealError {
    #[error("the key ring is empty")]
    Empty,
    #[error("key ring line {line}: {why} (expected `ID HEX`: ID 1-65535, 64 hex digits)")]
    BadLine { line: usize, why: &'static str },
    #[error("a value was sealed with key {0}, which the key ring does not hold")]
    UnknownKey(u16),
    #[error("a value does not open with key {0}: wrong key, or the record was altered or moved")]
    WrongKey(u16),
    #[error("a value is not sealed (the log holds unencrypted records)")]
    NotSealed,
}

/// The operator's keys, by id; the newest seals.
pub struct Keyring {
    keys: Vec<(u16, XChaCha20Poly1305)>,
    /// Nonces are this process's random 128-bit prefix and a counter: unique without a
    /// system call per record (a prefix drawn from the OS at each start never repeats in
    /// practice, so nothing is persisted).
    prefix: [u8; 16],
    counter: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u16> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("Keyring").field("ids", &ids).finish_non_exhaustive()
    }
}

impl Keyring {
    /// Parses `ID HEX` lines (blank lines and `#` comments skipped).
    pub fn parse(text: &str) -> Result<Keyring, SealError> {
        let mut keys = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why| SealError::BadLine { line: i + 1, why };
            let (id, hex) = line.split_once(char::is_whitespace).ok_or(bad("no key after the id"))?;
            let id: u16 = id.parse().ok().filter(|&n| n > 0).ok_or(bad("the id is not 1-65535"))?;
            let bytes = decode_hex(hex.trim()).ok_or(bad("the key is not 64 hex digits"))?;
            if keys.iter().any(|(k, _)| *k == id) {
                return Err(bad("the id is used twice"));
            }
            keys.push((id, XChaCha20Poly1305::new(&bytes.into())));
        }
        if keys.is_empty() {
            return Err(SealError::Empty);
        }
        let mut prefix = [0u8; 16];
        prefix.copy_from_slice(&XChaCha20Poly1305::generate_nonce(&mut OsRng)[..16]);
        Ok(Keyring { keys, prefix, counter: std::sync::atomic::AtomicU64::new(0) })
    }

    /// Every key id, oldest first.
    pub fn ids(&self) -> Vec<u16> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    /// The id new writes use.
    pub fn current(&self) -> u16 {
        self.keys.last().map_or(0, |(id, _)| *id)
    }

    /// `plain` sealed with the newest key, bound to `(table, game, seq)`.
    pub fn seal(&self, (table, game, seq): (&str, &str, u64), plain: &[u8]) -> Vec<u8> {
        let Some((id, cipher)) = self.keys.last() else { return Vec::new() };
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut nonce = XNonce::default();
        nonce[..16].copy_from_slice(&self.prefix);
        nonce[16..].copy_from_slice(&n.to_be_bytes());
        let aad = aad(table, game, seq);
        let mut out = Vec::with_capacity(HEADER + plain.len() + 16);
        out.extend_from_slice(&[MAGIC, VERSION]);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&nonce);
        // Encryption with a valid key and nonce cannot fail for inputs under 256 GiB.
        if let Ok(ct) = cipher.encrypt(&nonce, Payload { msg: plain, aad: &aad }) {
            out.extend_from_slice(&ct);
        }
        out
    }

    /// A value [`seal`](Self::seal)ed for `(table, game, seq)`, opened.
    pub fn open(&self, (table, game, seq): (&str, &str, u64), sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let id = key_id(sealed).ok_or(SealError::NotSealed)?;
        let (_, cipher) = self.keys.iter().find(|(k, _)| *k == id).ok_or(SealError::UnknownKey(id))?;
        let nonce = XNonce::from_slice(&sealed[4..HEADER]);
        let aad = aad(table, game, seq);
        cipher
            .decrypt(nonce, Payload { msg: &sealed[HEADER..], aad: &aad })
            .map_err(|_| SealError::WrongKey(id))
    }
}

/// How the log's values are stored: sealed under a key ring, or as they are.
#[derive(Debug, Clone, Default)]
pub struct Seal(Option<Arc<Keyring>>);

impl Seal {
    /// The key ring `[store.encryption]` names, read now; none when it names none.
    pub fn load(cfg: &EncryptionConfig) -> Result<Seal, String> {
        let text = match (&cfg.key_file, &cfg.key_env, &cfg.key_command) {
            (None, None, None) => return Ok(Seal(None)),
            (Some(path), None, None) => std::fs::read_to_string(path)
                .map_err(|e| format!("store.encryption.key_file {}: {e}", path.display()))?,
            (None, Some(var), None) => std::env::var(var)
                .map_err(|_| format!("store.encryption.key_env: ${var} is not set (or not UTF-8)"))?,
            (None, None, Some(cmd)) => {
                let out = std::process::Command::new("sh")
                    .args(["-c", cmd])
                    .output()
                    .map_err(|e| format!("store.encryption.key_command: cannot run `{cmd}`: {e}"))?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr);
                    return Err(format!(
                        "store.encryption.key_command `{cmd}` failed ({}): {}",
                        out.status,
                        err.trim()
                    ));
                }
                String::from_utf8(out.stdout)
                    .map_err(|_| "store.encryption.key_command printed non-UTF-8".to_string())?
            }
            _ => return Err("store.encryption: set one of key_file, key_env, key_command".into()),
        };
        let ring = Keyring::parse(&text).map_err(|e| format!("store.encryption: {e}"))?;
        Ok(Seal(Some(Arc::new(ring))))
    }

    pub fn with(ring: Keyring) -> Seal {
        Seal(Some(Arc::new(ring)))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// The key ring, when on.
    pub fn ring(&self) -> Option<&Keyring> {
        self.0.as_deref()
    }

    /// A value as it is stored: sealed for `at` when on.
    pub fn put<'a>(&self, at: (&str, &str, u64), plain: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.0 {
            Some(ring) => Cow::Owned(ring.seal(at, plain)),
            None => Cow::Borrowed(plain),
        }
    }

    /// A stored value as written: opened when on.
    pub fn get<'a>(&self, at: (&str, &str, u64), stored: &'a [u8]) -> Result<Cow<'a, [u8]>, SealError> {
        match &self.0 {
            Some(ring) => ring.open(at, stored).map(Cow::Owned),
            None => Ok(Cow::Borrowed(stored)),
        }
    }

    /// The marker an encrypted log keeps in `meta["seal"]`.
    pub fn marker(&self) -> Option<Vec<u8>> {
        self.0.as_ref().map(|r| r.seal((T_META, "", 0), MARKER))
    }

    /// Whether this seal reads a log whose marker is `marker` (`None`: a log never encrypted,
    /// `empty`: it holds nothing yet). The error says what to do.
    pub fn check(&self, marker: Option<&[u8]>, empty: bool) -> Result<(), String> {
        match (&self.0, marker) {
            (None, None) => Ok(()),
            (None, Some(m)) => Err(format!(
                "the event log is encrypted (key {}): set [store.encryption] key_file, key_env or key_command",
                key_id(m).unwrap_or(0)
            )),
            (Some(_), None) if empty => Ok(()),
            (Some(_), None) => {
                Err("the event log holds unencrypted records: run `opensports rekey --config FILE` \
                 with [store.encryption] set to encrypt them, or remove [store.encryption]"
                    .into())
            }
            (Some(ring), Some(m)) => match ring.open((T_META, "", 0), m) {
                Ok(_) => Ok(()),
                Err(SealError::UnknownKey(id)) => Err(format!(
                    "the event log is sealed with key {id}, which the key ring does not hold (keys: {:?})",
                    ring.ids()
                )),
                Err(e) => Err(format!("the event log does not open with the key ring: {e}")),
            },
        }
    }
}

/// The key id a sealed value names; none when it is not one.
pub fn key_id(sealed: &[u8]) -> Option<u16> {
    (sealed.len() >= HEADER + 16 && sealed[0] == MAGIC && sealed[1] == VERSION)
        .then(|| u16::from_be_bytes([sealed[2], sealed[3]]))
}

/// `table \0 game \0 seq`: what a sealed value is bound to.
fn aad(table: &str, game: &str, seq: u64) -> Vec<u8> {
    let mut a = Vec::with_capacity(table.len() + game.len() + 10);
    a.extend_from_slice(table.as_bytes());
    a.push(0);
    a.extend_from_slice(game.as_bytes());
    a.push(0);
    a.extend_from_slice(&seq.to_be_bytes());
    a
}

fn decode_hex(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const K2: &str = "2 ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_value_opens_only_for_its_table_game_and_seq_and_hides_its_text() {
        let ring = Keyring::parse(K1).unwrap();
        let sealed = ring.seal(("events", "nba-1", 7), b"LeBron James made a three");
        assert!(!sealed.windows(5).any(|w| w == b"LeBro"), "no plain text in a sealed value");
        assert_eq!(ring.open(("events", "nba-1", 7), &sealed).unwrap(), b"LeBron James made a three");
        for other in [("events", "nba-1", 8), ("events", "nba-2", 7), ("snapshots", "nba-1", 7)] {
            assert_eq!(ring.open(other, &sealed), Err(SealError::WrongKey(1)), "{other:?}");
        }
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(("events", "nba-1", 7), &flipped), Err(SealError::WrongKey(1)));
        assert_eq!(ring.open(("events", "nba-1", 7), b"plain json"), Err(SealError::NotSealed));
    }

    #[test]
    fn the_newest_key_seals_older_ones_still_open_and_a_missing_or_wrong_one_says_so() {
        let old = Keyring::parse(K1).unwrap();
        let both = Keyring::parse(&format!("{K1}\n# rotated\n{K2}\n")).unwrap();
        let by_old = old.seal(("events", "g", 1), b"x");
        let by_new = both.seal(("events", "g", 1), b"y");
        assert_eq!((key_id(&by_old), key_id(&by_new), both.current()), (Some(1), Some(2), 2));
        assert_eq!(both.open(("events", "g", 1), &by_old).unwrap(), b"x");
        assert_eq!(old.open(("events", "g", 1), &by_new), Err(SealError::UnknownKey(2)));
        let impostor = Keyring::parse(&K2.replace("2 ", "1 ")).unwrap();
        assert_eq!(impostor.open(("events", "g", 1), &by_old), Err(SealError::WrongKey(1)));
    }

    #[test]
    fn bad_key_rings_are_refused_with_the_line() {
        assert_eq!(Keyring::parse("# nothing\n").unwrap_err(), SealError::Empty);
        for (text, why) in [
            ("0 00", "the id is not 1-65535"),
            ("1", "no key after the id"),
            ("1 abcd", "the key is not 64 hex digits"),
        ] {
            assert_eq!(Keyring::parse(text).unwrap_err(), SealError::BadLine { line: 1, why });
        }
        let twice = format!("{K1}\n{K1}");
        assert!(matches!(Keyring::parse(&twice), Err(SealError::BadLine { line: 2, .. })));
    }
}
