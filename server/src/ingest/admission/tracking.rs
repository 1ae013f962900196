//! Tracking datagrams (PROTOCOL.md §1.4): decoding, and the rules a sample obeys before it is
//! published (latest value wins; never logged, never acked).

use opensports_proto::codec::{self, Codec};
use opensports_proto::error_code::reason;
use opensports_proto::tracking::TrackingSample;

use super::{Reject, Rules};
use crate::auth::Principal;

/// A tracking datagram: codec byte + body (no length). Decodes and validates the sample; the
/// caller publishes it (latest value wins, never logged, never acked).
pub fn datagram(bytes: &[u8]) -> Result<TrackingSample, Reject> {
    let refuse = |code: &'static str, message: String| Reject { game: None, seq: None, code, message };
    let Some((&codec_byte, body)) = bytes.split_first() else {
        return Err(refuse(reason::FRAME_MALFORMED, "empty datagram".into()));
    };
    let sample: TrackingSample = match Codec::from_byte(codec_byte) {
        Ok(Codec::Json) => {
            codec::decode_json(body).map_err(|e| refuse(e.code(), format!("tracking datagram: {e}")))?
        }
        Ok(Codec::Rkyv) => rkyv::from_bytes::<TrackingSample, rkyv::rancor::Error>(&codec::aligned(body))
            .map_err(|e| refuse(reason::BAD_RKYV, format!("tracking datagram: {e}")))?,
        Err(e) => return Err(refuse(reason::UNKNOWN_CODEC, e.to_string())),
    };
    if !opensports_proto::event::valid_game_id(&sample.game)
        || !opensports_proto::event::valid_game_id(&sample.entity)
    {
        return Err(refuse(
            reason::INVALID_EVENT,
            "tracking: game and entity must be 1..=64 bytes of [A-Za-z0-9_.-]".into(),
        ));
    }
    Ok(sample)
}

/// What may become of an admitted tracking sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Publish it (`new_entity`: its topic is to be made; the entity was counted).
    Publish { new_entity: bool },
    /// Older than the entity's latest sample: dropped.
    Stale,
}

/// The rules a decoded sample from `who` obeys: the sender may write the game; the server has
/// the game (a datagram never creates a game's topics, which would never be freed); a game has
/// at most `ingest.max_tracking_entities_per_game` entities; latest wins. `latest` is the entity
/// topic's latest ts (`None`: no topic yet; `Some(None)`: a topic with nothing published).
pub fn track(
    rules: Rules<'_>,
    who: &Principal,
    sample: &TrackingSample,
    latest: Option<Option<i64>>,
) -> Result<Track, Reject> {
    let refuse = |code: &'static str, message: String| Reject {
        game: Some(sample.game.clone()),
        seq: None,
        code,
        message,
    };
    if !who.may_write(&sample.game) {
        return Err(refuse(reason::FORBIDDEN, format!("{} may not write game {}", who.id, sample.game)));
    }
    if !rules.directory.contains(&sample.game) {
        let message = format!("tracking for game {}, which this server does not have", sample.game);
        return Err(refuse(reason::UNKNOWN_GAME, message));
    }
    match latest {
        Some(Some(ts)) if ts > sample.ts => Ok(Track::Stale),
        Some(_) => Ok(Track::Publish { new_entity: false }),
        None => {
            let mut count = rules.tracking.entry(sample.game.clone()).or_insert(0);
            if *count >= rules.max_tracking_entities {
                let message = "too many tracking entities for this game".into();
                return Err(refuse(reason::TOO_MANY_ENTITIES, message));
            }
            *count += 1;
            Ok(Track::Publish { new_entity: true })
        }
    }
}
