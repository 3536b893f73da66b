//! Emitted C (scalar, AVX2, NEON under qemu; the webgpu.h host on wgpu-native)
//! built and run against the PyTorch goldens.

mod common;

use cgnet_codegen::back::c::{toolchain, CTarget, Options};
use cgnet_codegen::back::compile;

fn check_target(target: CTarget) {
    if let Err(e) = toolchain::Toolchain::find(target) {
        // A wgpu-native folder that was named but is incomplete is a mistake, not a skip.
        assert!(!(target == CTarget::WebGpu && toolchain::WgpuNative::is_configured()), "{e}");
        eprintln!("SKIPPED {}: {e}", target.name());
        return;
    }
    for name in common::all_cases() {
        let golden = common::load(name);
        let model = compile(&golden.spec, &golden.graph, "test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let exe = toolchain::build(&model, &Options { target, weights_blob: true }, dir.path()).unwrap();
        let out = match toolchain::run(target, &exe, dir.path(), &golden.input.data, 2, 0) {
            Err(e) if e.to_string().contains("no GPU adapter") && std::env::var_os("CGNET_REQUIRE_GPU").is_none() => {
                eprintln!("SKIPPED {}: {e}", target.name());
                return;
            }
            result => result.unwrap(),
        };
        let g = &golden.logits;
        let logits = cgnet_codegen::Tensor { c: g.c, h: g.h, w: g.w, data: out.logits };
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
    }
}

#[test]
fn c_scalar_matches_every_golden_case() {
    check_target(CTarget::Scalar);
}

#[test]
fn c_avx2_matches_every_golden_case() {
    check_target(CTarget::Avx2);
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
