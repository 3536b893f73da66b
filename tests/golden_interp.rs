//! The reference interpreter against the PyTorch goldens.

mod common;

use cgnet_codegen::{interp, OutputKind};

#[test]
fn interpreter_matches_every_golden_case() {
    for name in common::all_cases() {
        let golden = common::load(name);
        assert_eq!(golden.graph.learnable_parameters(), golden.spec.parameters.unwrap(), "{name}: parameter count");
        cgnet_codegen::verify(&golden.graph).unwrap();
        let out = interp::run(&golden.graph, &golden.input).unwrap();
        let ratio = golden.check(&out[&OutputKind::Logits], &common::labels_of(&out[&OutputKind::Labels]), "interp");
        eprintln!("{name}: worst logit error = {ratio:.3} of tolerance");
    }
}
