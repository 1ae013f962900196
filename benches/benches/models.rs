//! Per-call latency of each shipped model at batch 1 through the server's registry (the direct
//! evaluator for Gemm/Relu stacks), beside the same call on tract's plan (`model_tract/`).
//!
//! `cargo bench -p opensports-benches --bench models`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opensports_server::model::ModelRegistry;

fn models(c: &mut Criterion) {
    let (reg, errors) = ModelRegistry::load(&opensports_tests::workspace().join("models"));
    assert!(errors.is_empty(), "{errors:?}");
    let specs: Vec<(String, usize)> = reg.specs().map(|s| (s.name.clone(), s.inputs.len())).collect();
    for (name, n) in specs {
        let inputs: Vec<f32> = (0..n).map(|i| 0.1 * i as f32).collect();
        let mut out = [0f32; 16];
        c.bench_function(&format!("model_infer/{name}"), |b| {
            b.iter(|| black_box(reg.infer(&name, black_box(&inputs), &mut out).expect("infer")))
        });
        let model = reg.get(&name).expect("loaded");
        c.bench_function(&format!("model_tract/{name}"), |b| {
            b.iter(|| black_box(model.tract(black_box(&inputs), &mut out).expect("tract")))
        });
    }
}

criterion_group!(benches, models);
criterion_main!(benches);
