//! The registry: every loaded version of every model, which one is active and which one is the
//! shadow. Switching versions takes a write lock for a pointer swap; an inference reads the
//! roles once, so each call is scored by exactly one active version (none dropped, none twice).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use super::{InferError, Manifest, Model, ModelError, ModelSpec, load_model};
use crate::metrics as m;

#[derive(Debug, Default, Clone)]
struct Roles {
    active: Option<Arc<Model>>,
    shadow: Option<Arc<Model>>,
}

#[derive(Debug, Default)]
struct Slot {
    versions: BTreeMap<String, Arc<Model>>,
    roles: RwLock<Roles>,
}

/// One scoring of a probability model: the active version's output and the shadow's, if any.
#[derive(Debug, Clone)]
pub struct Scored {
    pub active: Arc<Model>,
    pub p: f32,
    pub shadow: Option<(Arc<Model>, f32)>,
}

/// Why a role change was refused.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("no model named {0:?}")]
    NoSuchModel(String),
    #[error("model {name} has no loaded version {version:?}")]
    NoSuchVersion { name: String, version: String },
}

/// All models by name.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    names: BTreeMap<String, Slot>,
}

impl ModelRegistry {
    /// Loads every version in `dir/manifest.toml`. Refused versions are returned with the
    /// reason (and logged); the registry holds the rest. A missing manifest is an empty registry.
    pub fn load(dir: &Path) -> (ModelRegistry, Vec<ModelError>) {
        let path = dir.join("manifest.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return (ModelRegistry::default(), Vec::new());
            }
            Err(e) => {
                return (
                    ModelRegistry::default(),
                    vec![ModelError::Manifest { path, detail: e.to_string() }],
                );
            }
        };
        let manifest: Manifest = match toml::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                return (
                    ModelRegistry::default(),
                    vec![ModelError::Manifest { path, detail: e.to_string() }],
                );
            }
        };
        let mut reg = ModelRegistry::default();
        let mut errors = Vec::new();
        for spec in manifest.model {
            let (active, shadow) = (spec.active, spec.shadow);
            match load_model(dir, spec) {
                Ok(model) => {
                    tracing::info!(model = %model.spec.name, version = %model.spec.version, active, shadow, "model loaded");
                    let model = Arc::new(model);
                    let slot = reg.names.entry(model.spec.name.clone()).or_default();
                    slot.versions.insert(model.spec.version.clone(), model.clone());
                    let mut roles = slot.roles.write();
                    if active && roles.active.is_none() {
                        roles.active = Some(model.clone());
                    }
                    if shadow && !active {
                        roles.shadow = Some(model);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "model refused; running without it");
                    metrics::counter!(m::MODEL_REFUSED_TOTAL).increment(1);
                    errors.push(e);
                }
            }
        }
        (reg, errors)
    }

    /// The active version of `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Model>> {
        self.names.get(name)?.roles.read().active.clone()
    }

    /// Version `version` of `name`, whatever its role.
    pub fn version_of(&self, name: &str, version: &str) -> Option<Arc<Model>> {
        self.names.get(name)?.versions.get(version).cloned()
    }

    /// Specs of the active versions.
    pub fn specs(&self) -> impl Iterator<Item = ModelSpec> + '_ {
        self.names.values().filter_map(|s| s.roles.read().active.as_ref().map(|m| m.spec.clone()))
    }

    /// Runs the active version (and the shadow, whose disagreement is recorded).
    pub fn infer(&self, name: &str, inputs: &[f32], out: &mut [f32]) -> Result<usize, InferError> {
        let roles = self.names.get(name).ok_or(InferError::NoSuchModel)?.roles.read().clone();
        let active = roles.active.ok_or(InferError::NoSuchModel)?;
        let n = active.infer(inputs, out)?;
        if let (Some(shadow), true) = (roles.shadow, n > 0)
            && let Some(p) = shadow.prob(inputs)
        {
            shadow_diff(&active, (p - out[0]).abs());
        }
        Ok(n)
    }

    /// Scores a probability model with its active and shadow versions.
    pub fn score(&self, name: &str, inputs: &[f32]) -> Option<Scored> {
        let roles = self.names.get(name)?.roles.read().clone();
        let active = roles.active?;
        let p = active.prob(inputs)?;
        let shadow = roles.shadow.and_then(|s| s.prob(inputs).map(|q| (s, q)));
        if let Some((_, q)) = &shadow {
            shadow_diff(&active, (q - p).abs());
        }
        Some(Scored { active, p, shadow })
    }

    /// Makes `version` the active version of `name` (the shadow role is cleared if it held it).
    pub fn activate(&self, name: &str, version: &str) -> Result<(), RoleError> {
        let (slot, model) = self.version(name, version)?;
        let mut roles = slot.roles.write();
        if roles.shadow.as_ref().is_some_and(|s| Arc::ptr_eq(s, &model)) {
            roles.shadow = None;
        }
        roles.active = Some(model);
        tracing::info!(model = name, version, "model version activated");
        Ok(())
    }

    /// Sets (or clears, with `None`) the shadow version of `name`.
    pub fn set_shadow(&self, name: &str, version: Option<&str>) -> Result<(), RoleError> {
        let model = match version {
            Some(v) => Some(self.version(name, v)?.1),
            None => None,
        };
        let slot = self.names.get(name).ok_or_else(|| RoleError::NoSuchModel(name.into()))?;
        slot.roles.write().shadow = model;
        Ok(())
    }

    /// The active and shadow versions of `name` (audit's before/after).
    pub fn roles_of(&self, name: &str) -> serde_json::Value {
        let Some(slot) = self.names.get(name) else { return serde_json::Value::Null };
        let roles = slot.roles.read();
        let v = |r: &Option<Arc<Model>>| r.as_ref().map(|m| m.spec.version.clone());
        serde_json::json!({"active": v(&roles.active), "shadow": v(&roles.shadow)})
    }

    fn version(&self, name: &str, version: &str) -> Result<(&Slot, Arc<Model>), RoleError> {
        let slot = self.names.get(name).ok_or_else(|| RoleError::NoSuchModel(name.into()))?;
        let model = slot
            .versions
            .get(version)
            .cloned()
            .ok_or_else(|| RoleError::NoSuchVersion { name: name.into(), version: version.into() })?;
        Ok((slot, model))
    }

    /// `GET /v1/models`: every version with its role, training metrics and live outcome scores.
    pub fn report(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for slot in self.names.values() {
            let roles = slot.roles.read().clone();
            for model in slot.versions.values() {
                let is = |r: &Option<Arc<Model>>| r.as_ref().is_some_and(|a| Arc::ptr_eq(a, model));
                let (n, brier, log_loss) = model.outcome_scores();
                let s = &model.spec;
                out.push(serde_json::json!({
                    "name": s.name, "version": s.version, "active": is(&roles.active), "shadow": is(&roles.shadow),
                    "inputs": s.inputs, "outputs": s.outputs, "source": s.source, "holdout": s.holdout, "terms": s.terms,
                    "metrics": s.metrics, "live": {"predictions": n, "brier": brier, "log_loss": log_loss},
                }));
            }
        }
        out
    }
}

fn shadow_diff(active: &Model, diff: f32) {
    metrics::histogram!(m::MODEL_SHADOW_ABS_DIFF, "model" => active.spec.name.clone())
        .record(f64::from(diff));
}
