//! The fused graph, executed inside one planned arena, against the PyTorch goldens.

mod common;

use cgnet_codegen::{interp, passes, plan, OutputKind};

#[test]
fn fused_graph_in_planned_arena_matches_every_golden_case() {
    for name in common::all_cases() {
        let golden = common::load(name);
        let (fused, _) = passes::optimize(&golden.graph, None).unwrap();
        let plan = plan::plan(&fused);
        assert!(plan::conflicts(&plan).is_empty(), "{name}");
        let out = interp::run_planned(&fused, &plan, &golden.input).unwrap();
        let ratio = golden.check(&out[&OutputKind::Logits], &common::labels_of(&out[&OutputKind::Labels]), "fused");
        eprintln!("{name}: worst logit error = {ratio:.3} of tolerance, arena {} bytes", plan.arena_bytes);
    }
}
