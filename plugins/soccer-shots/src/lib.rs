//! `soccer-shots`: shot map with xG, team xG, possession share, pass network.
//!
//! Outputs:
//! - `shot`: `{player, side, x, y, body_part, outcome, xg, xg_source, provider_xg?, period,
//!   clock_ms?}` per shot (`period` and `clock_ms`, the match clock, place it on a timeline).
//!   `xg` comes from the server's `soccer_xg_geo` model (location, angle, body part: what a live
//!   feed carries; `xg_source: "model"`), else from the built-in fallback (`"geometry"`):
//!   logistic in distance d (m) and goal-mouth angle a (rad):
//!   `1 / (1 + exp(-(-1.10 - 0.11 d + 1.60 a - 0.80 [header])))`.
//! - `xg`: `{home, away, shots: {home, away}, period, clock_ms?}` running totals after each shot.
//! - `possession`: `{home, away}` share of passes (percent), every `possession_every` passes
//!   (config, default 25).
//! - `pass_network/{side}`: `{edges: [[from, to, count]...], degree: {player: centrality}}` every
//!   `network_every` events (config, default 100). The feed has no receiver, so an edge is
//!   "passer of a completed pass → next passer of the same team".

use std::collections::BTreeMap;

use opensports_plugin_sdk::proto::soccer::{BodyPart, Event as Sc};
use opensports_plugin_sdk::proto::{Body, Side, Sport};
use opensports_plugin_sdk::{Ctx, Plugin, export_plugin, serde_json, to_owned};
use serde::{Deserialize, Serialize};

fn idx(s: Side) -> usize {
    if s == Side::Home { 0 } else { 1 }
}
const SIDES: [&str; 2] = ["home", "away"];

/// Distance (m) to the goal centre and the angle (rad) the goal mouth subtends, from a point
/// of the pitch frame (105 × 68 m, attacking towards x = 105).
pub fn geometry(x: f32, y: f32) -> (f64, f64) {
    let (dx, dy) = (105.0 - f64::from(x), 34.0 - f64::from(y));
    let d = (dx * dx + dy * dy).sqrt();
    let half = 3.66;
    (d, ((dy + half).atan2(dx) - (dy - half).atan2(dx)).abs())
}

/// Geometric xG fallback, documented above.
pub fn geometric_xg(x: f32, y: f32, header: bool) -> f64 {
    let (d, a) = geometry(x, y);
    let z = -1.10 - 0.11 * d + 1.60 * a - if header { 0.80 } else { 0.0 };
    1.0 / (1.0 + (-z).exp())
}

#[derive(Serialize)]
struct ShotOut<'a> {
    player: &'a str,
    side: &'static str,
    x: f32,
    y: f32,
    body_part: BodyPart,
    outcome: opensports_plugin_sdk::proto::soccer::ShotOutcome,
    xg: f64,
    xg_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider_xg: Option<f32>,
    period: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    clock_ms: Option<u32>,
}

/// One match's shots and passes; its snapshot is this value as JSON (the two settings come
/// from `init`, not from the snapshot).
#[derive(Default, Serialize, Deserialize)]
pub struct Shots {
    xg: [f64; 2],
    shots: [u32; 2],
    passes: [u32; 2],
    last_passer: [Option<String>; 2],
    #[serde(with = "edge_lists")]
    edges: [BTreeMap<(String, String), u32>; 2],
    events: u64,
    /// The period under way (from `period_start`; 0 before the first).
    #[serde(default)]
    period: u8,
    #[serde(skip)]
    possession_every: u32,
    #[serde(skip)]
    network_every: u64,
}

/// The pass edges as lists of `((from, to), count)` (JSON object keys must be strings).
mod edge_lists {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Edges = [BTreeMap<(String, String), u32>; 2];

    pub fn serialize<S: Serializer>(edges: &Edges, s: S) -> Result<S::Ok, S::Error> {
        let lists: Vec<Vec<(&(String, String), &u32)>> = edges.iter().map(|m| m.iter().collect()).collect();
        lists.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Edges, D::Error> {
        let lists = <[Vec<((String, String), u32)>; 2]>::deserialize(d)?;
        Ok(lists.map(|l| l.into_iter().collect()))
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Plugin for Shots {
    const SPORTS: &'static [Sport] = &[Sport::Soccer];

    fn init(&mut self, config: &serde_json::Value) {
        self.possession_every = config["possession_every"].as_u64().unwrap_or(25).max(1) as u32;
        self.network_every = config["network_every"].as_u64().unwrap_or(100).max(1);
    }

    fn snapshot(&self) -> Vec<u8> {
        opensports_plugin_sdk::snapshot_json(self)
    }

    fn restore(&mut self, bytes: &[u8]) -> bool {
        let settings = (self.possession_every, self.network_every);
        let restored = opensports_plugin_sdk::restore_json(self, bytes);
        (self.possession_every, self.network_every) = settings;
        restored
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: &opensports_plugin_sdk::proto::event::ArchivedEvent) {
        let Some(ev) = to_owned(event) else { return };
        let clock_ms = ev.clock_ms;
        let Body::Soccer(ev) = ev.body else { return };
        self.events += 1;
        match ev {
            Sc::PeriodStart { period } => self.period = period,
            Sc::Shot { side, player, x, y, body_part, outcome, provider_xg } => {
                let header = body_part == BodyPart::Head;
                let (d, a) = geometry(x, y);
                let other = f32::from(u8::from(body_part == BodyPart::Other));
                // Inputs of soccer_xg_geo, in manifest order (models/README.md).
                let inputs = [d as f32, a as f32, f32::from(u8::from(header)), other, 0.0, 0.0];
                let (xg, source) = match ctx.infer("soccer_xg_geo", &inputs) {
                    Ok(out) if !out.is_empty() => (f64::from(out[out.len() - 1]), "model"),
                    _ => (geometric_xg(x, y, header), "geometry"),
                };
                let s = idx(side);
                self.xg[s] += xg;
                self.shots[s] += 1;
                let out = ShotOut {
                    player: &player,
                    side: SIDES[s],
                    x,
                    y,
                    body_part,
                    outcome,
                    xg: round3(xg),
                    xg_source: source,
                    provider_xg,
                    period: self.period,
                    clock_ms,
                };
                let _ = ctx.emit("shot", &out);
                let totals = serde_json::json!({
                    "home": round3(self.xg[0]), "away": round3(self.xg[1]),
                    "shots": {"home": self.shots[0], "away": self.shots[1]},
                    "period": self.period, "clock_ms": clock_ms,
                });
                let _ = ctx.emit("xg", &totals);
            }
            Sc::Pass { side, player, completed, .. } => {
                let s = idx(side);
                self.passes[s] += 1;
                if let Some(prev) = self.last_passer[s].take()
                    && prev != player
                {
                    *self.edges[s].entry((prev, player.clone())).or_default() += 1;
                }
                self.last_passer[s] = completed.then_some(player);
                self.last_passer[1 - s] = None;
                let total = self.passes[0] + self.passes[1];
                if total.is_multiple_of(self.possession_every) {
                    let home = f64::from(self.passes[0]) * 100.0 / f64::from(total);
                    let _ = ctx.emit(
                        "possession",
                        &serde_json::json!({"home": round3(home), "away": round3(100.0 - home)}),
                    );
                }
            }
            _ => {}
        }
        if self.events.is_multiple_of(self.network_every) {
            for (s, side) in SIDES.iter().enumerate() {
                if self.edges[s].is_empty() {
                    continue;
                }
                let mut degree: BTreeMap<&str, u32> = BTreeMap::new();
                for ((a, b), n) in &self.edges[s] {
                    *degree.entry(a).or_default() += n;
                    *degree.entry(b).or_default() += n;
                }
                let total: u32 = degree.values().sum::<u32>().max(1);
                let degree: BTreeMap<&str, f64> =
                    degree.into_iter().map(|(p, d)| (p, round3(f64::from(d) / f64::from(total)))).collect();
                let edges: Vec<(&str, &str, u32)> =
                    self.edges[s].iter().map(|((a, b), n)| (a.as_str(), b.as_str(), *n)).collect();
                let _ = ctx.emit(
                    &format!("pass_network/{side}"),
                    &serde_json::json!({"edges": edges, "degree": degree}),
                );
            }
        }
    }
}

export_plugin!(Shots);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_xg_is_sane() {
        let penalty_spot = geometric_xg(94.0, 34.0, false);
        let long_range = geometric_xg(75.0, 34.0, false);
        let wide = geometric_xg(100.0, 5.0, false);
        assert!(penalty_spot > 0.2 && penalty_spot < 0.5, "{penalty_spot}");
        assert!(long_range < 0.06, "{long_range}");
        assert!(wide < penalty_spot);
        assert!(geometric_xg(94.0, 34.0, true) < penalty_spot);
    }
}
