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

/// The fastest a person runs, m/s (a sprinter's peak is about 12.4).
pub const HUMAN_MAX_MPS: f32 = 12.5;

/// A person's tracking sample moving faster than anyone runs: the sample's own `speed`, or the
/// distance from the entity's previous sample over the time between them (when at least 100 ms
/// apart: closer samples' jitter is not speed). Not checked for the ball and for F1 (cars).
/// Positions are in the sport's frame: feet (basketball), yards (football), metres (soccer).
pub fn superhuman(
    sport: opensports_proto::Sport,
    prev: &TrackingSample,
    sample: &TrackingSample,
) -> Option<String> {
    use opensports_proto::Sport;
    let metres = match sport {
        Sport::Basketball => 0.3048,
        Sport::Football => 0.9144,
        Sport::Soccer => 1.0,
        Sport::F1 => return None,
    };
    if sample.entity == "ball" {
        return None;
    }
    if sample.speed > HUMAN_MAX_MPS {
        return Some(format!("{} tracked at {:.1} m/s", sample.entity, sample.speed));
    }
    let dt = sample.ts.saturating_sub(prev.ts) as f32 / 1e6;
    if dt < 0.1 {
        return None;
    }
    let d = ((sample.x - prev.x).powi(2) + (sample.y - prev.y).powi(2)).sqrt() * metres;
    (d / dt > HUMAN_MAX_MPS)
        .then(|| format!("{} moved {d:.1} m in {dt:.2} s ({:.1} m/s)", sample.entity, d / dt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opensports_proto::Sport;

    fn at(entity: &str, ts: i64, x: f32, speed: f32) -> TrackingSample {
        TrackingSample { game: "g".into(), ts, entity: entity.into(), x, y: 10.0, z: 0.0, speed }
    }

    #[test]
    fn faster_than_a_person_runs_is_reported() {
        let a = at("p1", 0, 10.0, 5.0);
        // 8 m in a second is a run; 30 m in a second is not.
        assert_eq!(superhuman(Sport::Soccer, &a, &at("p1", 1_000_000, 18.0, 8.0)), None);
        assert!(superhuman(Sport::Soccer, &a, &at("p1", 1_000_000, 40.0, 8.0)).is_some());
        // Feet: 30 ft in a second is 9.1 m/s.
        assert_eq!(superhuman(Sport::Basketball, &a, &at("p1", 1_000_000, 40.0, 8.0)), None);
        assert!(
            superhuman(Sport::Basketball, &a, &at("p1", 1_000_000, 10.0, 15.0)).is_some(),
            "its own speed"
        );
        // The ball and cars may; samples 20 ms apart are jitter.
        assert_eq!(
            superhuman(Sport::Soccer, &at("ball", 0, 0.0, 0.0), &at("ball", 1_000_000, 60.0, 30.0)),
            None
        );
        assert_eq!(superhuman(Sport::F1, &a, &at("p1", 1_000_000, 90.0, 80.0)), None);
        assert_eq!(superhuman(Sport::Soccer, &a, &at("p1", 20_000, 11.0, 8.0)), None);
    }
}
