//! A direct evaluator for the shape every shipped model has: a stack of `Gemm` layers with
//! `Relu` between them, ending in `Sigmoid` (a probability) or in `Softmax` → `MatMul` by a
//! constant points column → `Concat(expected, probs)` (expected points). tract runs any ONNX
//! graph, but for a few thousand multiply-adds its per-call overhead (tensors, op dispatch)
//! is most of the cost; these loops over the same weights take a fraction of it.
//!
//! tract stays the reference: [`Dense::from_onnx`] recognises the graph from its protobuf, and
//! the loader keeps the result only if it agrees with tract's plan on probe inputs
//! ([`Dense::agrees`]). Any other graph runs on tract.

use tract_onnx::pb;
use tract_onnx::prelude::Framework as _;

/// One `Gemm` layer, `y = x·W + b`, with `W` stored output-major (row `o` holds the weights
/// of output `o`), so each output is one contiguous dot product.
#[derive(Debug, Clone)]
struct Layer {
    n_in: usize,
    n_out: usize,
    w: Vec<f32>,
    b: Vec<f32>,
    relu: bool,
}

#[derive(Debug, Clone)]
enum Head {
    Sigmoid,
    /// Softmax over the classes, then `[Σ p·points, p...]`.
    ExpectedPoints(Vec<f32>),
}

#[derive(Debug, Clone)]
pub struct Dense {
    layers: Vec<Layer>,
    head: Head,
    /// Widest layer, for the two scratch rows.
    width: usize,
}

/// A constant tensor of the graph: dims and values.
type Const = (Vec<i64>, Vec<f32>);

/// ONNX `TensorProto.DataType.FLOAT`.
const ONNX_FLOAT: i32 = 1;

fn floats(t: &pb::TensorProto) -> Option<Vec<f32>> {
    if t.data_type != ONNX_FLOAT {
        return None;
    }
    if !t.float_data.is_empty() {
        return Some(t.float_data.clone());
    }
    let raw = &t.raw_data;
    raw.len()
        .is_multiple_of(4)
        .then(|| raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn int_attr(node: &pb::NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn float_attr(node: &pb::NodeProto, name: &str) -> Option<f32> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.f)
}

impl Dense {
    /// The evaluator for `onnx` (a model file's bytes), if its graph is a stack this module
    /// knows; `None` for anything else.
    pub fn from_onnx(onnx: &[u8]) -> Option<Dense> {
        let model = tract_onnx::onnx().proto_model_for_read(&mut &onnx[..]).ok()?;
        let graph = model.graph.as_ref()?;
        let init = |name: &str| {
            graph.initializer.iter().find(|t| t.name == name).and_then(|t| Some((t.dims.clone(), floats(t)?)))
        };
        let [input] = graph.input.iter().filter(|i| init(&i.name).is_none()).collect::<Vec<_>>()[..] else {
            return None;
        };
        let mut cur = input.name.clone();
        let mut layers: Vec<Layer> = Vec::new();
        let mut nodes = graph.node.iter().peekable();
        while let Some(node) = nodes.next_if(|n| n.op_type == "Gemm" || n.op_type == "Relu") {
            if node.input.first() != Some(&cur) || node.output.len() != 1 {
                return None;
            }
            if node.op_type == "Relu" {
                let last = layers.last_mut().filter(|l| !l.relu)?;
                last.relu = true;
            } else {
                layers.push(gemm(node, &init)?);
                if layers.len() > 1 && layers[layers.len() - 2].n_out != layers[layers.len() - 1].n_in {
                    return None;
                }
            }
            cur = node.output[0].clone();
        }
        let rest: Vec<&pb::NodeProto> = nodes.collect();
        let head = match rest.as_slice() {
            [s] if s.op_type == "Sigmoid" && s.input.first() == Some(&cur) => {
                (layers.last()?.n_out == 1).then_some(Head::Sigmoid)?
            }
            [sm, mm, cat] if sm.op_type == "Softmax" && mm.op_type == "MatMul" && cat.op_type == "Concat" => {
                let probs = sm.output.first()?;
                let (dims, points) = init(mm.input.get(1)?)?;
                let classes = layers.last()?.n_out;
                let ok = sm.input.first() == Some(&cur)
                    && matches!(int_attr(sm, "axis"), Some(1 | -1))
                    && mm.input.first() == Some(probs)
                    && dims == [classes as i64, 1]
                    && matches!(int_attr(cat, "axis"), Some(1 | -1))
                    && cat.input.len() == 2
                    && cat.input.first() == mm.output.first()
                    && cat.input.get(1) == Some(probs);
                ok.then_some(Head::ExpectedPoints(points))?
            }
            _ => return None,
        };
        if layers.last()?.relu {
            return None;
        }
        let width = layers.iter().map(|l| l.n_in.max(l.n_out)).max()?;
        Some(Dense { layers, head, width })
    }

    pub fn n_inputs(&self) -> usize {
        self.layers.first().map_or(0, |l| l.n_in)
    }

    pub fn n_outputs(&self) -> usize {
        match &self.head {
            Head::Sigmoid => 1,
            Head::ExpectedPoints(p) => 1 + p.len(),
        }
    }

    /// Evaluates one row; `out` must hold [`Dense::n_outputs`] values. Returns how many.
    pub fn run(&self, inputs: &[f32], out: &mut [f32]) -> Option<usize> {
        if inputs.len() != self.n_inputs() || out.len() < self.n_outputs() {
            return None;
        }
        // Two scratch rows on the stack for the models we ship; larger ones allocate.
        let mut stack = [0f32; 2 * 128];
        let mut heap = Vec::new();
        let scratch: &mut [f32] = if 2 * self.width <= stack.len() {
            &mut stack
        } else {
            heap.resize(2 * self.width, 0.0);
            &mut heap
        };
        let (mut a, mut b) = scratch.split_at_mut(self.width);
        a[..inputs.len()].copy_from_slice(inputs);
        for l in &self.layers {
            for (o, y) in b[..l.n_out].iter_mut().enumerate() {
                let row = &l.w[o * l.n_in..(o + 1) * l.n_in];
                let dot: f32 = row.iter().zip(&a[..l.n_in]).map(|(w, x)| w * x).sum();
                let v = dot + l.b[o];
                *y = if l.relu { v.max(0.0) } else { v };
            }
            std::mem::swap(&mut a, &mut b);
        }
        let n = self.layers.last().map_or(0, |l| l.n_out);
        let z = &a[..n];
        match &self.head {
            Head::Sigmoid => out[0] = 1.0 / (1.0 + (-z[0]).exp()),
            Head::ExpectedPoints(points) => {
                let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let probs = &mut out[1..=n];
                for (p, v) in probs.iter_mut().zip(z) {
                    *p = (v - max).exp();
                }
                let sum: f32 = probs.iter().sum();
                for p in probs.iter_mut() {
                    *p /= sum;
                }
                out[0] = probs.iter().zip(points).map(|(p, v)| p * v).sum();
            }
        }
        Some(self.n_outputs())
    }

    /// Whether this evaluator gives `reference`'s outputs (within `1e-4`, f32 summation order)
    /// on a fixed spread of probe inputs.
    pub fn agrees(&self, reference: impl Fn(&[f32], &mut [f32]) -> Option<usize>) -> bool {
        let n = self.n_inputs();
        let mut seed: u32 = 0x9e37_79b9;
        let (mut ours, mut theirs) = (vec![0f32; self.n_outputs()], vec![0f32; self.n_outputs()]);
        (0..32).all(|_| {
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed % 2001) as f32 / 100.0 - 10.0
                })
                .collect();
            let a = self.run(&x, &mut ours);
            let b = reference(&x, &mut theirs);
            a.is_some()
                && a == b
                && ours.iter().zip(&theirs).all(|(p, q)| (p - q).abs() <= 1e-4 * (1.0 + q.abs()))
        })
    }
}

/// A `Gemm` node with constant weights and bias, `alpha = beta = 1`, `transA = 0`.
fn gemm(node: &pb::NodeProto, init: &dyn Fn(&str) -> Option<Const>) -> Option<Layer> {
    if int_attr(node, "transA").unwrap_or(0) != 0
        || float_attr(node, "alpha").unwrap_or(1.0) != 1.0
        || float_attr(node, "beta").unwrap_or(1.0) != 1.0
    {
        return None;
    }
    let (wd, w) = init(node.input.get(1)?)?;
    let (bd, b) = init(node.input.get(2)?)?;
    let trans_b = int_attr(node, "transB").unwrap_or(0) != 0;
    let [r, c] = wd[..] else { return None };
    let (r, c) = (usize::try_from(r).ok()?, usize::try_from(c).ok()?);
    // Stored as [n_in, n_out] unless transB (then already [n_out, n_in]).
    let (n_in, n_out) = if trans_b { (c, r) } else { (r, c) };
    if w.len() != n_in * n_out || b.len() != n_out || bd.iter().product::<i64>() != n_out as i64 {
        return None;
    }
    let w = if trans_b {
        w
    } else {
        (0..n_out).flat_map(|o| (0..n_in).map(move |i| (i, o))).map(|(i, o)| w[i * n_out + o]).collect()
    };
    Some(Layer { n_in, n_out, w, b, relu: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        std::fs::read(dir.join(format!("{name}.onnx"))).expect("shipped model")
    }

    #[test]
    fn every_shipped_model_is_a_stack_this_module_runs() {
        for (name, outputs) in
            [("nba_wp", 1), ("nfl_wp", 1), ("soccer_xg", 1), ("soccer_xg_geo", 1), ("nfl_ep", 8)]
        {
            let d = Dense::from_onnx(&shipped(name)).unwrap_or_else(|| panic!("{name} not recognised"));
            assert!(d.n_outputs() >= outputs, "{name}");
        }
    }

    #[test]
    fn other_graphs_are_left_to_tract() {
        assert!(Dense::from_onnx(b"not a model").is_none());
        let mut bytes = shipped("nba_wp");
        // Rename the Sigmoid op: a graph this module does not know.
        let at = bytes.windows(7).position(|w| w == b"Sigmoid").expect("Sigmoid node");
        bytes[at..at + 7].copy_from_slice(b"Softsgn");
        assert!(Dense::from_onnx(&bytes).is_none());
    }

    #[test]
    fn a_disagreeing_reference_is_noticed() {
        let d = Dense::from_onnx(&shipped("nba_wp")).expect("nba_wp");
        assert!(d.agrees(|x, out| d.run(x, out)));
        assert!(!d.agrees(|x, out| d.run(x, out).inspect(|_| out[0] += 0.01)));
    }
}
