//! The compiled program (runtime kernels, every variant) against the PyTorch goldens.

mod common;

use cgnet::codegen::back::{compile, native};
use cgnet::runtime::kernels::Isa;

#[test]
fn compiled_program_matches_every_golden_case_on_every_kernel_variant() {
    for name in common::all_cases() {
        let golden = common::load(name);
        let model = compile(&golden.spec, &golden.graph, "test").unwrap();
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Neon] {
            if !isa.is_supported() {
                eprintln!(
                    "SKIPPED {isa:?} on {name}: not supported by this CPU (NEON runs under qemu-aarch64, see .ci/run)"
                );
                continue;
            }
            let out = native::execute(&model, isa, None, &golden.input.data).unwrap();
            let g = &golden.logits;
            let logits = cgnet::codegen::Tensor { c: g.c, h: g.h, w: g.w, data: out.logits };
            let labels: Vec<i32> = out.labels.iter().map(|l| i32::from(*l)).collect();
            let ratio = golden.check(&logits, &labels, &format!("{isa:?}"));
            eprintln!("{name} {isa:?}: worst logit error = {ratio:.3} of tolerance, arena {} bytes", model.arena_bytes);
        }
    }
}
