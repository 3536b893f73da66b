//! The WGSL backend: every kernel it emits, for models that exercise every
//! step kind and epilogue, passes naga's parser and validator (what wgpu runs
//! before any GPU sees the code), and one small model's kernels are snapshotted.
//! That the kernels compute the right thing is `tests/golden_gpu.rs` (root crate).

use cgnet_codegen::back::{compile_streaming, wgsl};
use cgnet_codegen::spec::{Activation, Residual};
use cgnet_codegen::stream::Streaming;
use cgnet_codegen::testing::bind_random_weights;
use cgnet_codegen::{lower, ModelSpec};

fn validate(label: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{label} does not parse:\n{}\n{source}", e.emit_to_string(source)));
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty());
    if let Err(e) = validator.validate(&module) {
        panic!("{label} is invalid:\n{}\n{source}", e.emit_to_string(source));
    }
}

fn small(residual: Residual, activation: Activation, glo: bool) -> cgnet_codegen::back::CompiledModel {
    let mut spec = ModelSpec::cityscapes(37, 53);
    (spec.classes, spec.stage2_blocks, spec.stage3_blocks) = (4, 2, 2);
    (spec.residual, spec.activation, spec.global_context) = (residual, activation, glo);
    let mut graph = lower(&spec);
    bind_random_weights(&mut graph, 3);
    compile_streaming(&spec, &graph, "random", Streaming::Off).unwrap()
}

#[test]
fn every_kernel_is_valid_wgsl() {
    let mut kinds = std::collections::BTreeSet::new();
    for (residual, activation, glo) in [
        (Residual::Global, Activation::Prelu, true),
        (Residual::Local, Activation::Relu, true),
        (Residual::None, Activation::Prelu, false),
    ] {
        let model = small(residual, activation, glo);
        let plan = wgsl::plan(&model).unwrap();
        assert_eq!(plan.body.len(), model.steps.len());
        for (kernel, step) in plan.body.iter().zip(&model.steps) {
            validate(&kernel.label, &kernel.wgsl);
            kinds.insert(step.parts().0);
        }
        for kernel in [&plan.run, &plan.scores, &plan.segment] {
            validate(&kernel.label, &kernel.wgsl);
        }
    }
    // Every step kind of the body was seen (the tails add the upsamples).
    for kind in ["Conv", "Winograd", "DepthwisePair", "AvgPool", "ChannelSums", "Squeeze", "Elementwise"] {
        assert!(kinds.contains(kind), "no {kind} step in the test models");
    }
}

#[test]
fn wgsl_of_a_small_model() {
    let plan = wgsl::plan(&small(Residual::Global, Activation::Prelu, true)).unwrap();
    let mut text = String::new();
    for k in plan.body.iter().chain([&plan.run, &plan.scores, &plan.segment]) {
        text += &format!("// ==== {} (workgroups {:?})\n{}\n", k.label, k.workgroups, k.wgsl);
    }
    insta::assert_snapshot!(text);
}

#[test]
fn large_dispatches_spill_into_z() {
    let mut spec = ModelSpec::cityscapes(1024, 2048);
    spec.stage3_blocks = 1;
    let mut graph = lower(&spec);
    bind_random_weights(&mut graph, 3);
    let plan = wgsl::plan(&compile_streaming(&spec, &graph, "random", Streaming::Off).unwrap()).unwrap();
    let scores = &plan.scores;
    // 19 x 1024 x 2048 scores in workgroups of 64: more than 65,535 along x.
    assert_eq!(scores.workgroups[0], 65_535);
    assert!(scores.workgroups[2] > 1);
    let total = u64::from(scores.workgroups[0]) * u64::from(scores.workgroups[2]) * 64;
    assert!(total >= 19 * 1024 * 2048);
    validate(&scores.label, &scores.wgsl);
}

/// The steps' multiply-adds (what `cgnetc bench --profile` rates them by) are
/// the graph's arithmetic: convolutions and the depthwise pairs, all but the
/// pools, the squeeze's tiny matrices and the tails.
#[test]
fn the_steps_macs_are_the_graphs() {
    let model = small(Residual::Global, Activation::Prelu, true);
    let steps: u64 = model.steps.iter().map(|s| s.macs()).sum();
    assert!(steps <= model.macs, "{steps} > {}", model.macs);
    assert!(steps as f64 >= 0.98 * model.macs as f64, "{steps} of {}", model.macs);
    let kinds: std::collections::BTreeSet<String> = model.steps.iter().map(|s| s.kind()).collect();
    assert!(kinds.contains("Conv 3x3/2") && kinds.contains("Conv 1x1/1"), "{kinds:?}");
}
