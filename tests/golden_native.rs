//! The compiled program (runtime kernels, every variant) against the PyTorch goldens.

mod common;

use cgnet::runtime::kernels::{Input, Isa};
use cgnet_codegen::back::{compile, native};

/// Also the 8-bit entry (the picture normalised by the first kernels as they
/// read it): bit for bit what the float path gives on the normalised picture,
/// on every kernel variant. On the CamVid cases the picture is the golden's own
/// image, which normalises to the golden's input exactly: the same run.
#[test]
fn compiled_program_matches_every_golden_case_on_every_kernel_variant() {
    for name in common::all_cases() {
        let golden = common::load(name);
        // The spec that normalises the case's picture (the float path does not depend on it).
        let (spec, picture, own_image) = common::picture(&golden);
        let model = compile(&spec, &golden.graph, "test").unwrap();
        let floats = spec.normalise_rgb8(&picture);
        assert_eq!(
            own_image,
            common::bits(&floats) == common::bits(&golden.input.data),
            "{name}: the image normalises to the input"
        );
        // AVX-512 runs the AVX2 variant's multiply-adds in the same order: the same bits.
        let mut avx2_logits = None;
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon] {
            if !isa.is_supported() {
                let why = match isa {
                    Isa::Avx512 => "no AVX-512 on this CPU",
                    _ => "not supported by this CPU (NEON runs under qemu-aarch64, see .ci/run)",
                };
                eprintln!("SKIPPED {isa:?} on {name} ({why})");
                continue;
            }
            if isa == Isa::Scalar && cfg!(target_arch = "aarch64") {
                // AArch64 is tested under qemu (slow): NEON there, the portable kernels on x86-64.
                eprintln!("SKIPPED Scalar on {name}: tested on x86-64; AArch64 runs NEON only");
                continue;
            }
            let out = native::execute(&model, isa, None, Input::Floats(&golden.input.data)).unwrap();
            let g = &golden.logits;
            let logits = cgnet_codegen::Tensor { c: g.c, h: g.h, w: g.w, data: out.logits.clone() };
            let labels: Vec<i32> = out.labels.iter().map(|l| i32::from(*l)).collect();
            let ratio = golden.check(&logits, &labels, &format!("{isa:?}"));
            eprintln!("{name} {isa:?}: worst logit error = {ratio:.3} of tolerance, arena {} bytes", model.arena_bytes);
            match isa {
                Isa::Avx2 => avx2_logits = Some(common::bits(&out.logits)),
                Isa::Avx512 => {
                    let avx2 = avx2_logits.as_ref().expect("AVX-512 CPUs have AVX2");
                    assert!(*avx2 == common::bits(&out.logits), "{name}: Avx512 logits differ from Avx2's");
                    eprintln!("{name} Avx512: bit-identical to Avx2");
                }
                _ => {}
            }

            if isa == Isa::Neon && !own_image {
                // Under qemu (slow) NEON checks the picture path where it costs one run:
                // the cases whose picture is the golden's own image (as c-neon does).
                eprintln!(
                    "SKIPPED {name} {isa:?} from the 8-bit picture: checked on the CamVid cases (their own image)"
                );
                continue;
            }
            let input = Input::Rgb8 { pixels: &picture, normalisation: model.normalisation() };
            let from_picture = native::execute(&model, isa, None, input).unwrap();
            let from_floats =
                if own_image { out } else { native::execute(&model, isa, None, Input::Floats(&floats)).unwrap() };
            let what = format!("{name} {isa:?} from the 8-bit picture");
            assert_eq!(common::bits(&from_picture.logits), common::bits(&from_floats.logits), "{what}: logits");
            assert_eq!(common::bits(&from_picture.scores), common::bits(&from_floats.scores), "{what}: scores");
            assert_eq!(from_picture.labels, from_floats.labels, "{what}: labels");
            eprintln!("{what}: bit-identical to the float path{}", if own_image { " (the golden input)" } else { "" });
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
