//! Plugin state in a game's state snapshot (`pipeline::snapshot`): each plugin's bytes for the
//! game through its optional `snapshot`/`restore` exports, tagged with the plugin's version.
//! A snapshot is all or nothing: a game whose plugins cannot all give their state (no exports,
//! quarantined or failed on the game) takes no snapshot and is recovered by a full replay.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use opensports_proto::Sport;
use serde::{Deserialize, Serialize};

use super::{EventHistory, ShardPlugins, build, sport_bit};

/// Largest state one plugin may give for one game; a larger one means no snapshot for the game
/// (it is replayed whole), so a plugin cannot make the log write its whole memory every few
/// thousand events.
pub const MAX_STATE_BYTES: usize = 1 << 20;

/// One plugin's state for one game.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlugin {
    pub name: String,
    /// The plugin's version (hash of its `.wasm`): state is restored only into that version.
    pub version: String,
    /// The plugin's own bytes, base64.
    pub state: String,
}

impl ShardPlugins {
    /// Every plugin of `sport`'s state for `game`, or `None` when one cannot give it.
    pub fn snapshot(&mut self, game: &str, sport: Sport) -> Option<Vec<SavedPlugin>> {
        let mut saved = Vec::new();
        for slot in &mut self.slots {
            if slot.compiled.sports & sport_bit(sport) == 0 {
                continue;
            }
            if slot.info.quarantined_for(game) || slot.failed.iter().any(|(g, _)| g == game) {
                return None;
            }
            let bytes = slot.instance.as_mut()?.snapshot(game).ok()??;
            if bytes.len() > MAX_STATE_BYTES {
                tracing::warn!(plugin = %slot.info.name, game, bytes = bytes.len(), "plugin state over 1 MiB: no snapshot");
                return None;
            }
            saved.push(SavedPlugin {
                name: slot.info.name.to_string(),
                version: slot.compiled.version.clone(),
                state: STANDARD.encode(bytes),
            });
        }
        Some(saved)
    }

    /// Restores every plugin of `sport` for `game` from `saved`. False, with no plugin left
    /// holding state for the game, unless each one's running version is in `saved` and took it.
    pub fn restore(
        &mut self,
        game: &str,
        sport: Sport,
        saved: &[SavedPlugin],
        history: &dyn EventHistory,
    ) -> bool {
        let mut states = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.compiled.sports & sport_bit(sport) == 0 {
                continue;
            }
            let found =
                saved.iter().find(|s| *s.name == *slot.info.name && s.version == slot.compiled.version);
            match found.and_then(|s| STANDARD.decode(&s.state).ok()) {
                Some(bytes) => states.push((i, bytes)),
                None => return false,
            }
        }
        for (n, (i, bytes)) in states.iter().enumerate() {
            let slot = &mut self.slots[*i];
            if slot.instance.is_none() {
                slot.instance = build(&self.set, slot, history);
            }
            let restored = slot.instance.as_mut().is_some_and(|inst| inst.restore(game, bytes).is_ok());
            if !restored {
                for (j, _) in &states[..n] {
                    if let Some(inst) = self.slots[*j].instance.as_mut() {
                        inst.forget(game);
                    }
                }
                return false;
            }
        }
        true
    }
}
