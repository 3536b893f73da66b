//! `target: gpu` in `cgnet!`: the model's `on_gpu` session against its own CPU
//! entry points and the golden, and no GPU resource created per inference.
//! Needs cgnet's `gpu` feature: `cargo test -p cgnet --features gpu --test macro_gpu`.
//! Without an adapter it prints `SKIPPED`, unless `CGNET_REQUIRE_GPU` is set.

mod common;

use cgnet::runtime::gpu::{Gpu, GpuError};

cgnet::cgnet! {
    /// The authors' CamVid model on a 96x128 crop, for the GPU.
    pub model CamVidCropGpu {
        input: 3 x 96 x 128,
        classes: 11,
        mean: [105.65775, 103.329834, 99.625404],
        stage2: { channels: 64, blocks: 3, dilation: 2, reduction: 8 },
        stage3: { channels: 128, blocks: 21, dilation: 4, reduction: 16 },
        weights: "weights/cgnet_camvid.safetensors",
        target: gpu,
    }
}

#[test]
fn a_gpu_model_matches_its_cpu_entry_points_and_the_golden() {
    let gpu = match Gpu::new(CamVidCropGpu::GPU_BUFFER_BYTES) {
        Ok(gpu) => gpu,
        Err(e @ GpuError::NoAdapter(_)) if std::env::var_os("CGNET_REQUIRE_GPU").is_none() => {
            eprintln!("SKIPPED the cgnet! GPU model: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let model = CamVidCropGpu::new();
    let mut session = model.on_gpu(&gpu).unwrap();
    let created = session.resources_created();
    let golden = common::load("camvid_official_crop_96x128");
    let input = &golden.input.data;
    let mut logits = vec![0.0f32; CamVidCropGpu::LOGITS_SHAPE.iter().product()];
    let mut labels = vec![0u8; CamVidCropGpu::LABELS_LEN];
    session.run(input, &mut logits).unwrap();
    session.segment(input, &mut labels).unwrap();
    assert_eq!(session.resources_created(), created, "an inference created GPU resources");

    let g = &golden.logits;
    let tensor = cgnet_codegen::Tensor { c: g.c, h: g.h, w: g.w, data: logits.clone() };
    let as_i32: Vec<i32> = labels.iter().map(|l| i32::from(*l)).collect();
    let ratio = golden.check(&tensor, &as_i32, "cgnet! target gpu");
    eprintln!("cgnet! target gpu on {}: worst logit error = {ratio:.3} of tolerance", gpu.info());

    // The same model's CPU entry points agree to float rounding.
    let mut arena = CamVidCropGpu::new_arena();
    let mut cpu = vec![0.0f32; logits.len()];
    model.run(input, arena.as_f32_mut(), &mut cpu).unwrap();
    let worst = cpu.iter().zip(&logits).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < 1e-3, "GPU and CPU logits differ by {worst}");

    // The crop's own 8-bit picture through the session's 8-bit entry points: the golden again.
    let (_, picture, _) = common::picture(&golden);
    let mut from_picture = vec![0.0f32; logits.len()];
    session.run_rgb8(&picture, &mut from_picture).unwrap();
    session.segment_rgb8(&picture, &mut labels).unwrap();
    assert_eq!(session.resources_created(), created, "an 8-bit inference created GPU resources");
    let tensor = cgnet_codegen::Tensor { c: g.c, h: g.h, w: g.w, data: from_picture };
    let as_i32: Vec<i32> = labels.iter().map(|l| i32::from(*l)).collect();
    let ratio = golden.check(&tensor, &as_i32, "cgnet! target gpu, 8-bit picture");
    eprintln!("cgnet! target gpu from the 8-bit picture: worst logit error = {ratio:.3} of tolerance");
}
