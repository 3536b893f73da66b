//! Runs the bundled CamVid model on the GPU: compiled to WGSL compute kernels
//! by the compiler (`back::wgsl`) and run by cgnet-runtime's wgpu shim, then
//! checked against the CPU kernels on the same input.
//!
//! ```sh
//! cargo run --release --features gpu --example gpu
//! ```
//!
//! Without a GPU, Mesa's software Vulkan driver (lavapipe, Debian package
//! `mesa-vulkan-drivers`) runs it too, slowly.

use std::error::Error;
use std::time::Instant;

use cgnet::runtime::gpu::{Gpu, GpuSession};
use cgnet::runtime::kernels::{Input, Isa};
use cgnet::runtime::Weights;
use cgnet_codegen::back::{compile, native, program::sha256_hex, wgsl};

fn main() -> Result<(), Box<dyn Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let decl = cgnet_codegen::syntax::parse_file(&root.join("models/camvid.cgnet"))?;
    let weights_path = root.join("weights/cgnet_camvid.safetensors");
    let mut graph = cgnet_codegen::lower(&decl.spec);
    graph.bind(&Weights::load(&weights_path, &graph.expected_weights())?);
    let model = compile(&decl.spec, &graph, &sha256_hex(&std::fs::read(&weights_path)?))?;

    // Set-up, once: the device, every buffer and pipeline, the weights uploaded.
    let plan = wgsl::plan(&model)?;
    let gpu = Gpu::new((plan.arena_floats * 4) as u64)?;
    let started = Instant::now();
    let mut session = GpuSession::new(&gpu, &plan, &model.weights)?;
    println!("{}: {} kernels set up in {:.2} s", gpu.info(), plan.body.len() + 3, started.elapsed().as_secs_f64());

    // An image-like input: 0..255 minus the CamVid mean, NCHW.
    let (h, w) = (model.height, model.width);
    let mean = [105.65775f32, 103.329834, 99.625404];
    let input: Vec<f32> = (0..3 * h * w).map(|i| ((i * 7919) % 256) as f32 - mean[i / (h * w)]).collect();

    let mut labels = vec![0u8; plan.labels];
    for _ in 0..3 {
        let started = Instant::now();
        session.segment(&input, &mut labels)?;
        println!("segment {h}x{w}: {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
    }
    let cpu = native::execute(&model, Isa::detect(), None, Input::Floats(&input))?;
    let same = labels.iter().zip(&cpu.labels).filter(|(a, b)| a == b).count();
    println!("labels equal to the CPU's: {same} of {} pixels", labels.len());
    Ok(())
}
