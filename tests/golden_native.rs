//! The compiled program (runtime kernels, every variant) against the PyTorch goldens.

mod common;

use cgnet::runtime::kernels::Isa;
use cgnet_codegen::back::{compile, native};

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
            let logits = cgnet_codegen::Tensor { c: g.c, h: g.h, w: g.w, data: out.logits };
            let labels: Vec<i32> = out.labels.iter().map(|l| i32::from(*l)).collect();
            let ratio = golden.check(&logits, &labels, &format!("{isa:?}"));
            eprintln!("{name} {isa:?}: worst logit error = {ratio:.3} of tolerance, arena {} bytes", model.arena_bytes);
        }
    }
}

/// The packing recipe a compiled model carries, executed by cgnet-runtime on
/// the weight file, gives bit for bit the weights the compiler packed.
#[test]
fn the_packing_recipe_reproduces_the_compiled_weights() {
    for name in common::all_cases() {
        let golden = common::load(name);
        let model = compile(&golden.spec, &golden.graph, "test").unwrap();
        let bytes = std::fs::read(common::paths(name).weights).unwrap();
        let packed = model.recipe.with(|recipe| recipe.pack(&bytes, name)).unwrap();
        assert_eq!(packed.len(), model.weights.len(), "{name}");
        let differ = packed.iter().zip(&model.weights).position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(differ, None, "{name}: first packed float that differs");
        eprintln!(
            "{name}: {} file tensors, {} derived values, {} placements -> {} floats, fingerprint {}",
            model.recipe.tensors.len(),
            model.recipe.derived.len(),
            model.recipe.placements.len(),
            model.recipe.len,
            model.recipe.fingerprint
        );
    }
}
