//! Emitted C (scalar, AVX2, AVX-512, NEON under qemu; the webgpu.h host on wgpu-native)
//! built and run against the PyTorch goldens.

mod common;

use cgnet::runtime::kernels::{Input, Isa};
use cgnet_codegen::back::c::{toolchain, CTarget, Options};
use cgnet_codegen::back::{compile_streaming, native};

/// The Rust kernels that run the same multiply-adds in the same order as a C
/// target on this machine (NEON runs under qemu, the GPU elsewhere: none).
fn rust_twin(target: CTarget) -> Option<Isa> {
    let isa = match target {
        CTarget::Scalar => Isa::Scalar,
        CTarget::Avx2 => Isa::Avx2,
        CTarget::Avx512 => Isa::Avx512,
        _ => return None,
    };
    isa.is_supported().then_some(isa)
}

/// Checks every golden case on `target`; returns each case's logits.
fn check_target(target: CTarget) -> Vec<Vec<f32>> {
    let mut all_logits = Vec::new();
    if let Err(e) = toolchain::Toolchain::find(target) {
        // A wgpu-native folder that was named but is incomplete is a mistake, not a skip.
        assert!(!(target == CTarget::WebGpu && toolchain::WgpuNative::is_configured()), "{e}");
        eprintln!("SKIPPED {}: {e}", target.name());
        return all_logits;
    }
    for name in common::all_cases() {
        let golden = common::load(name);
        // The spec that normalises the case's picture (the CamVid mean on the
        // CamVid cases); the float path does not depend on it.
        let (spec, picture, own_image) = common::picture(&golden);
        let model = compile_streaming(&spec, &golden.graph, "test", target.streaming()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let exe = toolchain::build(&model, &Options { target, weights_blob: true }, dir.path()).unwrap();
        let out = match toolchain::run(target, &exe, dir.path(), &golden.input.data, 2, 0) {
            Err(e) if e.to_string().contains("no GPU adapter") && std::env::var_os("CGNET_REQUIRE_GPU").is_none() => {
                eprintln!("SKIPPED {}: {e}", target.name());
                return all_logits;
            }
            result => result.unwrap(),
        };
        let g = &golden.logits;
        let logits = cgnet_codegen::Tensor { c: g.c, h: g.h, w: g.w, data: out.logits.clone() };
        let labels: Vec<i32> = out.labels.iter().map(|l| i32::from(*l)).collect();
        let ratio = golden.check(&logits, &labels, target.name());
        // The scores tail agrees with the labels tail.
        let pixels = labels.len();
        for p in (0..pixels).step_by(97) {
            let best = (0..g.c)
                .max_by(|a, b| out.scores[a * pixels + p].total_cmp(&out.scores[b * pixels + p]).then(b.cmp(a)));
            assert_eq!(best.unwrap() as i32, labels[p], "{name}: scores and labels disagree at pixel {p}");
        }
        eprintln!("{name} {}: worst logit error = {ratio:.3} of tolerance", target.name());
        // Built as the emitted README says (`-std=c99`: no multiply-adds fused
        // behind the code's back), C computes what the Rust kernels compute.
        if let Some(isa) = rust_twin(target) {
            let rust = native::execute(&model, isa, None, Input::Floats(&golden.input.data)).unwrap();
            assert!(
                common::bits(&out.logits) == common::bits(&rust.logits),
                "{name}: {} logits differ from {isa:?}'s",
                target.name()
            );
            assert!(
                common::bits(&out.scores) == common::bits(&rust.scores),
                "{name}: {} scores differ from {isa:?}'s",
                target.name()
            );
            eprintln!("{name} {}: bit-identical to the Rust kernels ({isa:?})", target.name());
        }
        // Under qemu (c-neon), the CamVid cases only: their float run is the golden run.
        all_logits.push(out.logits.clone());
        if target != CTarget::Neon || own_image {
            check_picture_entry(target, &golden, (&spec, &picture, own_image), (&exe, dir.path()), out);
        }
    }
    all_logits
}

/// The `_rgb8` entry points give what the float ones give on the normalised
/// picture: bit for bit on the CPU targets; on the GPU (whose driver compiles
/// the kernels reading the picture separately) to the golden tolerance, and
/// reported. On the CamVid cases' own image they also meet the goldens.
fn check_picture_entry(
    target: CTarget,
    golden: &common::Golden,
    (spec, picture, own_image): (&cgnet_codegen::ModelSpec, &[u8], bool),
    (exe, dir): (&std::path::Path, &std::path::Path),
    golden_run: toolchain::HarnessOutputs,
) {
    let name = &golden.name;
    let from_picture = toolchain::run_picture(target, exe, dir, picture, 2).unwrap();
    // The CamVid cases' own image normalises to the golden input exactly (checked
    // by golden_native): its float run is the golden run.
    let from_floats = if own_image {
        golden_run
    } else {
        toolchain::run(target, exe, dir, &spec.normalise_rgb8(picture), 2, 0).unwrap()
    };
    let what = format!("{name} {} from the 8-bit picture", target.name());
    if target.is_cpu() {
        assert_eq!(common::bits(&from_picture.logits), common::bits(&from_floats.logits), "{what}: logits");
        assert_eq!(common::bits(&from_picture.scores), common::bits(&from_floats.scores), "{what}: scores");
        assert_eq!(from_picture.labels, from_floats.labels, "{what}: labels");
    } else {
        let scale = from_floats.logits.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let pairs = from_floats.logits.iter().zip(&from_picture.logits);
        let worst = pairs.clone().map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst <= 1e-4 * scale, "{what}: logits differ from the float path's by {worst}");
        let identical = pairs.into_iter().all(|(a, b)| a.to_bits() == b.to_bits());
        eprintln!("{what}: max |difference| to the float path {worst:e}, bit-identical: {identical}");
    }
    if own_image {
        let g = &golden.logits;
        let logits = cgnet_codegen::Tensor { c: g.c, h: g.h, w: g.w, data: from_picture.logits };
        let labels: Vec<i32> = from_picture.labels.iter().map(|l| i32::from(*l)).collect();
        let ratio = golden.check(&logits, &labels, &what);
        eprintln!("{what}: worst logit error = {ratio:.3} of tolerance");
    }
}

#[test]
fn c_scalar_matches_every_golden_case() {
    check_target(CTarget::Scalar);
}

/// c-avx512 where the CPU has AVX-512F: the goldens, and bit for bit what
/// c-avx2 gives (the same multiply-adds in the same order, 16 lanes at a time).
#[test]
fn c_avx2_and_c_avx512_match_every_golden_case() {
    let avx2 = check_target(CTarget::Avx2);
    if !Isa::Avx512.is_supported() {
        eprintln!("SKIPPED c-avx512 (no AVX-512 on this CPU)");
        return;
    }
    let avx512 = check_target(CTarget::Avx512);
    assert!(!avx2.is_empty() && avx512.len() == avx2.len(), "both targets ran every case");
    for ((name, a), b) in common::all_cases().into_iter().zip(&avx2).zip(&avx512) {
        assert!(common::bits(a) == common::bits(b), "{name}: c-avx512 logits differ from c-avx2's");
        eprintln!("{name} c-avx512: bit-identical to c-avx2");
    }
}

#[test]
fn c_neon_matches_every_golden_case_under_qemu() {
    check_target(CTarget::Neon);
}

/// Skips without wgpu-native (unless `CGNET_WGPU_NATIVE_DIR` names a folder) or
/// without a GPU adapter (unless `CGNET_REQUIRE_GPU` is set, as in CI).
#[test]
fn c_webgpu_host_matches_every_golden_case() {
    check_target(CTarget::WebGpu);
}
