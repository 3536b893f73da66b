//! Property test of the buffer plan on random valid topologies: no two
//! simultaneously live buffers overlap, and executing the fused graph inside
//! the planned arena gives the unfused interpreter's result.

use cgnet_codegen::ir::OutputKind;
use cgnet_codegen::spec::{Activation, CgStage, ModelSpec, Residual, Stage1};
use cgnet_codegen::testing::{bind_random_weights, image_like_input, relative_error};
use cgnet_codegen::{interp, lower, passes, plan};
use proptest::prelude::*;

fn spec_strategy() -> impl Strategy<Value = ModelSpec> {
    (
        (1usize..4, 1usize..4, 1usize..6, 0usize..3, any::<bool>(), any::<bool>(), any::<bool>()),
        (prop::sample::select(vec![4usize, 6, 8]), 1usize..3, prop::sample::select(vec![8usize, 12, 16])),
        (prop::sample::select(vec![8usize, 16, 24]), 1usize..5, 1usize..5),
        (8usize..30, 8usize..30, prop::sample::select(vec![1usize, 2, 4]), 0usize..3),
    )
        .prop_map(
            |((m, n, classes, residual, inj, prelu, glo), (c1, convs, c2), (c3, d2, d3), (h, w, r, outputs))| {
                let residual = [Residual::Global, Residual::Local, Residual::None][residual];
                let mut spec = ModelSpec::cityscapes(h, w);
                spec.classes = classes;
                (spec.stage2_blocks, spec.stage3_blocks, spec.residual) = (m, n, residual);
                (spec.input_injection, spec.global_context) = (inj, glo);
                spec.activation = if prelu { Activation::Prelu } else { Activation::Relu };
                spec.stage1 = Stage1 { channels: c1, convs };
                spec.stage2 = CgStage { channels: c2, dilation: d2, reduction: r };
                spec.stage3 = CgStage { channels: c3, dilation: d3, reduction: r };
                spec.name = Some(["all", "logits", "labels"][outputs].to_string());
                spec
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn planned_arena_execution_matches_the_reference(spec in spec_strategy()) {
        spec.validate().unwrap();
        let outputs: &[OutputKind] = match spec.model_name() {
            "logits" => &[OutputKind::Logits],
            "labels" => &[OutputKind::Labels],
            _ => &OutputKind::ALL,
        };
        let mut graph = lower(&spec);
        bind_random_weights(&mut graph, spec.height as u64 * 31 + spec.width as u64);
        graph.retain_outputs(outputs);
        let graph = graph.compact();
        let (fused, _) = passes::optimize(&graph, None).unwrap();
        let plan = plan::plan(&fused);
        prop_assert!(plan::conflicts(&plan).is_empty(), "overlapping live buffers: {:?}", plan::conflicts(&plan));
        prop_assert!(plan.arena_bytes >= plan.arena_lower_bound_bytes);
        prop_assert!(plan.buffers.iter().all(|b| b.offset % plan::ALIGN == 0));

        let input = image_like_input(spec.height, spec.width, 3);
        let ours = interp::run_planned(&fused, &plan, &input).unwrap();
        let reference = interp::run(&graph, &input).unwrap();
        for (kind, r) in &reference {
            if *kind == OutputKind::Labels {
                // Ties within float noise may flip a label; compare scores where asked, labels mostly equal.
                let same = ours[kind].data.iter().zip(&r.data).filter(|(a, b)| a == b).count();
                prop_assert!(same * 100 >= r.data.len() * 99, "labels differ at {} of {} pixels", r.data.len() - same, r.data.len());
            } else {
                let err = relative_error(&ours[kind], r);
                prop_assert!(err <= 1e-5, "{} differs by {err:e}", kind.name());
            }
        }
    }
}
