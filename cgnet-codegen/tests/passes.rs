//! Every pass, differentially: the graph after passes 1..=k against the
//! unfused graph, on random weights and image-like input, for every variant
//! the spec allows. Plus the verifier's own negative tests.

use cgnet_codegen::interp;
use cgnet_codegen::ir::{verify, Graph, Op, OutputKind, Placement};
use cgnet_codegen::passes::{optimize, PIPELINE};
use cgnet_codegen::spec::{Activation, ModelSpec, Residual};
use cgnet_codegen::testing::{bind_random_weights, image_like_input, relative_error};
use cgnet_codegen::{lower, plan};

fn variants() -> Vec<ModelSpec> {
    let mut specs = Vec::new();
    for (residual, injection, activation, glo, m, n) in [
        (Residual::Global, true, Activation::Prelu, true, 2, 3),
        (Residual::Local, false, Activation::Prelu, true, 2, 2),
        (Residual::None, true, Activation::Relu, false, 1, 2),
        (Residual::Global, true, Activation::Relu, true, 1, 1),
    ] {
        let mut s = ModelSpec::cityscapes(27, 45);
        (s.classes, s.residual, s.input_injection, s.activation, s.global_context) =
            (5, residual, injection, activation, glo);
        (s.stage2_blocks, s.stage3_blocks) = (m, n);
        s.stage2.channels = 16;
        s.stage3 = cgnet_codegen::spec::CgStage { channels: 32, dilation: 2, reduction: 4 };
        s.stage1.channels = 8;
        s.validate().unwrap();
        specs.push(s);
    }
    specs
}

fn random_graph(spec: &ModelSpec, seed: u64, outputs: &[OutputKind]) -> Graph {
    let mut g = lower(spec);
    bind_random_weights(&mut g, seed);
    g.retain_outputs(outputs);
    g.compact()
}

fn assert_same(a: &Graph, b: &Graph, what: &str, spec: &ModelSpec) {
    let input = image_like_input(spec.height, spec.width, 7);
    let (x, y) = (interp::run(a, &input).unwrap(), interp::run(b, &input).unwrap());
    for (kind, reference) in &y {
        let err = relative_error(&x[kind], reference);
        assert!(err <= 1e-5, "{what}: {} differs by {err:e} (relative) on {spec:?}", kind.name());
    }
}

/// Checks the graph after the pass `name` (and the ones before it) against the
/// unfused one, and that the pass did something where the variant has its pattern.
fn check_pass(name: &str, outputs: &[OutputKind]) {
    let k = 1 + PIPELINE.iter().position(|p| p.name == name).expect("a pass of the pipeline");
    for (i, spec) in variants().iter().enumerate() {
        let g = random_graph(spec, i as u64, outputs);
        let (before, _) = optimize(&g, Some(k - 1)).unwrap();
        let (after, applied) = optimize(&g, Some(k)).unwrap();
        assert_eq!(applied.last().unwrap().pass, PIPELINE[k - 1].name);
        let has_pattern = match name {
            "global-context" => spec.global_context,
            "common-subexpressions" => spec.input_injection,
            _ => true,
        };
        if has_pattern {
            assert!(applied[k - 1].rewrites > 0, "{} rewrote nothing on {spec:?}", PIPELINE[k - 1].name);
        }
        assert!(after.nodes.len() <= before.nodes.len());
        assert_same(&after, &g, PIPELINE[k - 1].name, spec);
    }
}

#[test]
fn common_subexpressions() {
    check_pass("common-subexpressions", &OutputKind::ALL);
    // The image is pooled once: the second injection pools the first pool's result.
    for spec in variants().iter().filter(|s| s.input_injection) {
        let (g, _) = optimize(&random_graph(spec, 1, &OutputKind::ALL), Some(1)).unwrap();
        let image_pools = g.nodes.iter().filter(|(_, n)| matches!(n.op, Op::AvgPool) && n.inputs == [g.input]);
        assert_eq!(image_pools.count(), 1, "{spec:?}");
    }
}

#[test]
fn depthwise_pair() {
    check_pass("depthwise-pair", &OutputKind::ALL);
}

#[test]
fn fold_batch_norm() {
    check_pass("fold-batch-norm", &OutputKind::ALL);
}

#[test]
fn fuse_activation() {
    check_pass("fuse-activation", &OutputKind::ALL);
}

#[test]
fn eliminate_concat() {
    check_pass("eliminate-concat", &OutputKind::ALL);
    // No concat copies are left: every part of every concat is written in place.
    let k = 1 + PIPELINE.iter().position(|p| p.name == "eliminate-concat").unwrap();
    for spec in variants() {
        let (g, _) = optimize(&random_graph(&spec, 1, &OutputKind::ALL), Some(k)).unwrap();
        for (id, node) in g.nodes.iter() {
            if matches!(node.op, Op::Concat) {
                assert!((0..node.inputs.len()).all(|i| g.concat_part_in_place(id, i)), "{id} copies");
            }
            assert!(!matches!(node.op, Op::BatchNorm { .. } | Op::Prelu { .. }), "{id} left unfused");
        }
    }
}

#[test]
fn global_context() {
    check_pass("global-context", &OutputKind::ALL);
}

#[test]
fn head() {
    check_pass("head", &[OutputKind::Labels]);
    let spec = &variants()[0];
    let (g, _) = optimize(&random_graph(spec, 3, &[OutputKind::Labels]), None).unwrap();
    assert!(g.nodes.iter().any(|(_, n)| matches!(n.op, Op::UpsampleArgmax)));
    assert!(!g.nodes.iter().any(|(_, n)| matches!(n.op, Op::Upsample)), "scores are never materialised");
}

#[test]
fn planned_arena_execution_matches_for_every_variant() {
    for spec in variants() {
        let g = random_graph(&spec, 11, &[OutputKind::Logits, OutputKind::Labels]);
        let (fused, _) = optimize(&g, None).unwrap();
        let plan = plan::plan(&fused);
        assert!(plan::conflicts(&plan).is_empty());
        let input = image_like_input(spec.height, spec.width, 5);
        let (x, y) = (interp::run_planned(&fused, &plan, &input).unwrap(), interp::run(&g, &input).unwrap());
        assert!(relative_error(&x[&OutputKind::Logits], &y[&OutputKind::Logits]) <= 1e-5);
        assert_eq!(x[&OutputKind::Labels], y[&OutputKind::Labels]);
    }
}

#[test]
fn the_verifier_rejects_broken_graphs() {
    let spec = &variants()[0];
    let (good, _) = optimize(&lower(spec), None).unwrap();

    let mut g = good.clone();
    let conv = g.nodes.handles().find(|n| matches!(g.nodes[*n].op, Op::Conv2d(_))).unwrap();
    g.nodes[conv].shape.c += 1;
    assert!(verify(&g).unwrap_err().to_string().contains("declared shape"));

    let mut g = good.clone();
    let last = g.nodes.handles().last().unwrap();
    g.nodes[conv].inputs[0] = last;
    assert!(verify(&g).unwrap_err().to_string().contains("not scheduled before it"));

    let mut g = good.clone();
    let (placed, owner) = g
        .nodes
        .iter()
        .find_map(|(id, n)| match n.placement {
            Placement::Slice { owner, .. } => Some((id, owner)),
            _ => None,
        })
        .unwrap();
    g.nodes[placed].placement = Placement::Slice { owner, channel_offset: g.nodes[owner].shape.c };
    assert!(verify(&g).unwrap_err().to_string().contains("does not fit"));
}

#[test]
fn default_model_plan_meets_the_memory_budget() {
    let mut g = lower(&ModelSpec::cityscapes(512, 1024));
    g.retain_outputs(&[OutputKind::Logits, OutputKind::Labels]);
    let (fused, _) = optimize(&g.compact(), None).unwrap();
    // Unstreamed (streamed, the CPU targets' arena is under 25 MB: `cli.rs`, `streaming.rs`).
    let plan = plan::plan(&fused);
    assert!(plan.arena_bytes <= 38_000_000, "arena {} bytes", plan.arena_bytes);
    // Each block's excitation and residual add store the result in place of an input,
    // and so does each part of a split convolution onto the sums before it.
    let in_place = plan.buffers.iter().filter(|b| b.in_place_of.is_some()).count();
    assert!(in_place >= 2 + 1 + 19 + 3, "{in_place} results in place");
    assert!(plan.arena_bytes as f64 <= 1.1 * plan.arena_lower_bound_bytes as f64);
    assert!(plan.unshared_bytes > 5 * plan.arena_bytes);
    assert!(plan::conflicts(&plan).is_empty());
}
