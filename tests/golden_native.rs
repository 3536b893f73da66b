//! The compiled program (runtime kernels, every variant) against the PyTorch goldens.

mod common;

use cgnet::runtime::kernels::{Input, Isa};
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
            let out = native::execute(&model, isa, None, Input::Floats(&golden.input.data)).unwrap();
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

/// The 8-bit entry points (the picture normalised by the first kernels as they
/// read it) give bit for bit what the float path gives on the normalised
/// picture, on every kernel variant; on the CamVid cases the picture is the
/// golden's own image, so the goldens hold for it.
#[test]
fn the_8_bit_entry_equals_the_float_path_on_every_kernel_variant() {
    for name in common::all_cases() {
        let golden = common::load(name);
        let (spec, picture, own_image) = common::picture(&golden);
        let model = compile(&spec, &golden.graph, "test").unwrap();
        let floats = spec.normalise_rgb8(&picture);
        // Under qemu-aarch64 (slow), NEON only: the scalar kernels are checked on x86-64.
        let isas = [Isa::Scalar, Isa::Avx2, Isa::Neon].into_iter();
        for isa in isas.filter(|isa| isa.is_supported() && !(cfg!(target_arch = "aarch64") && *isa == Isa::Scalar)) {
            let input = Input::Rgb8 { pixels: &picture, normalisation: model.normalisation() };
            let from_picture = native::execute(&model, isa, None, input).unwrap();
            let from_floats = native::execute(&model, isa, None, Input::Floats(&floats)).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&from_picture.logits), bits(&from_floats.logits), "{name} {isa:?}: logits");
            assert_eq!(bits(&from_picture.scores), bits(&from_floats.scores), "{name} {isa:?}: scores");
            assert_eq!(from_picture.labels, from_floats.labels, "{name} {isa:?}: labels");
            if own_image {
                let g = &golden.logits;
                let logits = cgnet_codegen::Tensor { c: g.c, h: g.h, w: g.w, data: from_picture.logits };
                let labels: Vec<i32> = from_picture.labels.iter().map(|l| i32::from(*l)).collect();
                let ratio = golden.check(&logits, &labels, &format!("{isa:?} from the 8-bit picture"));
                eprintln!("{name} {isa:?} from the 8-bit picture: worst logit error = {ratio:.3} of tolerance");
            }
        }
    }
}
