//! ONNX models (tract): the manifest, checks, the registry of loaded models and inference.
//!
//! # Layout
//! - this file: `models/manifest.toml` parsing, the checks a model must pass (file, sha256,
//!   input and output shapes, operators tract can run), the [`ModelRegistry`] and `infer`.
//! - [`registry`]: the loaded models by name, active and shadow versions, scoring.
//! - [`predictions`]: a game's predictions per version, scored when the result is known.
//! - [`ratings`]: Elo team ratings (pre-game strength), kept in the log as games end.
//!
//! `model` is a leaf: it takes feature vectors and returns numbers. Which features a game
//! state gives is the pipeline's business (`pipeline::winprob`).
//!
//! Each model is loaded once with a fixed batch of 1 (`into_optimized().into_runnable()`); the
//! plan is immutable and shared by the shards. Run state (tract's `SimpleState`: op states and
//! value slots) is kept in a small lock-free pool, so a shard takes one, runs and gives it back
//! instead of building a fresh state per call; in practice each shard thread keeps reusing one.
//! A model whose graph is a plain `Gemm`/`Relu` stack (every shipped one) is evaluated by
//! [`dense`] instead, once it has agreed with tract's plan at load; tract runs anything else.
//! A model that fails a check is refused with a message naming the field, and the server runs
//! without it.

mod dense;
pub mod predictions;
pub mod ratings;
pub mod registry;

pub use registry::ModelRegistry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::metrics as m;

/// Why a model was refused. Each names the model and the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {detail}")]
    Manifest { path: PathBuf, detail: String },
    #[error("model {name}: file: {path} cannot be read: {detail}")]
    File { name: String, path: PathBuf, detail: String },
    #[error("model {name}: sha256: manifest says {expected}, file has {actual}")]
    Hash { name: String, expected: String, actual: String },
    #[error("model {name}: {field}: {detail}")]
    Shape { name: String, field: &'static str, detail: String },
    #[error("model {name}: ops: tract cannot run it: {detail}")]
    Ops { name: String, detail: String },
}

/// One `[[model]]` of the manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub version: String,
    pub file: PathBuf,
    pub sha256: String,
    /// Input feature names, in order.
    pub inputs: Vec<String>,
    pub input_shape: Vec<usize>,
    pub outputs: Vec<String>,
    pub output_shape: Vec<usize>,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub holdout: String,
    /// Terms the model inherits from its training data (e.g. non-commercial), when it has any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub terms: String,
    /// The version `infer` uses for this name (one per name).
    #[serde(default = "yes")]
    pub active: bool,
    /// Also scored on the same inputs, for comparison (at most one per name).
    #[serde(default)]
    pub shadow: bool,
    #[serde(default)]
    pub metrics: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub anchor: BTreeMap<String, toml::Value>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub(crate) struct Manifest {
    #[serde(default)]
    pub(crate) model: Vec<ModelSpec>,
}

/// A loaded model (one version).
#[derive(Debug)]
pub struct Model {
    pub spec: ModelSpec,
    plan: Arc<TypedRunnableModel>,
    /// The direct evaluator, when the graph is one it knows and it agreed with `plan`.
    dense: Option<dense::Dense>,
    /// Reusable run states; a call takes one (or spawns one when all are busy) and returns it.
    states: crossbeam_queue::ArrayQueue<TypedSimpleState>,
    latency: metrics::Histogram,
    /// Outcome scoring: predictions scored, Brier and log-loss sums.
    outcomes: parking_lot::Mutex<(u64, f64, f64)>,
}

/// Why an inference call failed (statuses of the plugin ABI's `infer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InferError {
    #[error("no such model")]
    NoSuchModel,
    #[error("wrong number of inputs")]
    BadInput,
    #[error("output buffer too small")]
    OutputTooSmall,
    #[error("inference failed")]
    Failed,
}

impl Model {
    /// Runs the model on one row; writes the outputs into `out`, returns how many.
    pub fn infer(&self, inputs: &[f32], out: &mut [f32]) -> Result<usize, InferError> {
        if inputs.len() != self.spec.inputs.len() {
            return Err(InferError::BadInput);
        }
        let started = Instant::now();
        let n = match &self.dense {
            Some(d) => d.run(inputs, out).ok_or(InferError::OutputTooSmall)?,
            None => self.tract(inputs, out)?,
        };
        self.latency.record(started.elapsed().as_secs_f64());
        Ok(n)
    }

    /// [`Model::infer`] on tract's plan: the reference the direct evaluator is checked against
    /// at load (and benchmarked beside).
    pub fn tract(&self, inputs: &[f32], out: &mut [f32]) -> Result<usize, InferError> {
        let tensor = Tensor::from_shape(&[1, inputs.len()], inputs).map_err(|_| InferError::BadInput)?;
        let mut state = match self.states.pop() {
            Some(state) => state,
            None => self.plan.spawn().map_err(|_| InferError::Failed)?,
        };
        let result = state.run(tvec!(tensor.into()));
        // A full pool (more concurrent callers than slots) just drops the extra state.
        let _ = self.states.push(state);
        let result = result.map_err(|_| InferError::Failed)?;
        let values = result[0].to_plain_array_view::<f32>().map_err(|_| InferError::Failed)?;
        let Some(out) = out.get_mut(..values.len()) else {
            return Err(InferError::OutputTooSmall);
        };
        for (o, v) in out.iter_mut().zip(values.iter()) {
            *o = *v;
        }
        Ok(values.len())
    }

    /// Whether calls run on the direct evaluator ([`dense`]) rather than tract's plan.
    pub fn direct(&self) -> bool {
        self.dense.is_some()
    }

    /// Scores predictions `ps` of this version against an outcome (`won` for the positive class).
    pub fn record_outcome(&self, ps: &[f32], won: bool) {
        let y = if won { 1.0 } else { 0.0 };
        let (mut brier, mut ll) = (0.0, 0.0);
        for p in ps {
            let p = f64::from(*p).clamp(1e-6, 1.0 - 1e-6);
            brier += (p - y) * (p - y);
            ll -= y * p.ln() + (1.0 - y) * (1.0 - p).ln();
        }
        let labels = [("model", self.spec.name.clone()), ("version", self.spec.version.clone())];
        metrics::counter!(m::MODEL_OUTCOME_PREDICTIONS_TOTAL, &labels).increment(ps.len() as u64);
        metrics::gauge!(m::MODEL_OUTCOME_BRIER_SUM, &labels).increment(brier);
        metrics::gauge!(m::MODEL_OUTCOME_LOG_LOSS_SUM, &labels).increment(ll);
        let mut o = self.outcomes.lock();
        o.0 += ps.len() as u64;
        o.1 += brier;
        o.2 += ll;
    }

    /// (predictions scored, mean Brier, mean log loss) against outcomes seen live.
    pub fn outcome_scores(&self) -> (u64, Option<f64>, Option<f64>) {
        let (n, b, l) = *self.outcomes.lock();
        if n == 0 { (0, None, None) } else { (n, Some(b / n as f64), Some(l / n as f64)) }
    }

    /// Convenience for one probability output.
    pub fn prob(&self, inputs: &[f32]) -> Option<f32> {
        let mut out = [0f32; 4];
        match self.infer(inputs, &mut out) {
            Ok(n) if n >= 1 => Some(out[0]),
            _ => None,
        }
    }
}

/// Run states kept per model: one per shard thread plus plugin callers is plenty.
const STATE_POOL: usize = 16;

/// Checks and loads one model.
pub fn load_model(dir: &Path, spec: ModelSpec) -> Result<Model, ModelError> {
    let name = spec.name.clone();
    let path = dir.join(&spec.file);
    let bytes = std::fs::read(&path).map_err(|e| ModelError::File {
        name: name.clone(),
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let actual: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if !actual.eq_ignore_ascii_case(&spec.sha256) {
        return Err(ModelError::Hash { name, expected: spec.sha256.clone(), actual });
    }
    let shape_err = |field, detail: String| ModelError::Shape { name: name.clone(), field, detail };
    if spec.input_shape != [1, spec.inputs.len()] {
        return Err(shape_err(
            "input_shape",
            format!("{:?} does not match 1 × {} inputs", spec.input_shape, spec.inputs.len()),
        ));
    }
    let ops = |e: TractError| ModelError::Ops { name: name.clone(), detail: format!("{e:#}") };
    let model = tract_onnx::onnx().model_for_read(&mut bytes.as_slice()).map_err(ops)?;
    let declared = model.input_fact(0).map_err(ops)?.shape.clone();
    let declared: Vec<Option<usize>> = declared
        .dims()
        .map(|d| d.concretize().and_then(|d| d.as_i64()).and_then(|d| usize::try_from(d).ok()))
        .collect();
    let fits = declared.len() == spec.input_shape.len()
        && declared.iter().zip(&spec.input_shape).all(|(d, want)| d.is_none_or(|d| d == *want));
    if !fits {
        return Err(shape_err(
            "input_shape",
            format!("manifest {:?}, model declares {declared:?}", spec.input_shape),
        ));
    }
    let shape: Vec<usize> = spec.input_shape.clone();
    let plan = model
        .with_input_fact(0, f32::fact(&shape).into())
        .map_err(ops)?
        .into_optimized()
        .map_err(ops)?
        .into_runnable()
        .map_err(ops)?;
    let out_shape: Vec<usize> =
        plan.model().output_fact(0).map_err(ops)?.shape.as_concrete().map(|s| s.to_vec()).unwrap_or_default();
    if out_shape != spec.output_shape {
        return Err(shape_err(
            "output_shape",
            format!("manifest {:?}, model gives {out_shape:?}", spec.output_shape),
        ));
    }
    let latency = metrics::histogram!(m::MODEL_INFER_SECONDS, "model" => name.clone());
    let states = crossbeam_queue::ArrayQueue::new(STATE_POOL);
    let mut model =
        Model { spec, plan, dense: None, states, latency, outcomes: parking_lot::Mutex::new((0, 0.0, 0.0)) };
    model.dense = dense::Dense::from_onnx(&bytes).filter(|d| {
        d.n_inputs() == model.spec.inputs.len()
            && model.spec.output_shape == [1, d.n_outputs()]
            && d.agrees(|x, out| model.tract(x, out).ok())
    });
    tracing::debug!(model = %name, direct = model.dense.is_some(), "model evaluator");
    Ok(model)
}
