//! Concurrent use of one compiled model: 8 threads at once, each with its own
//! arena, 50 inferences each on different inputs, every result bit-identical
//! to the serial one; and one shared `ThreadPool` driven from two threads at
//! once (jobs take turns: no race, no deadlock, same bits).

mod common;

use std::time::Instant;

cgnet::cgnet! {
    model Cityscapes {
        input: 3 x 64 x 128,
        classes: 19,
        weights: "tests/golden/cityscapes_m3n21_64x128.safetensors",
    }
}

const THREADS: usize = 8;
const INFERENCES: usize = 50;
/// Distinct inputs the threads cycle through (each thread starts at another one).
const INPUTS: usize = 16;

fn inputs() -> Vec<Vec<f32>> {
    let (h, w) = (Cityscapes::INPUT_SHAPE[2], Cityscapes::INPUT_SHAPE[3]);
    (0..INPUTS as u64).map(|seed| cgnet_codegen::testing::image_like_input(h, w, seed).data).collect()
}

/// The logits of every input, one at a time.
fn serial(model: &Cityscapes, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let mut arena = Cityscapes::new_arena();
    inputs
        .iter()
        .map(|input| {
            let mut logits = vec![0.0f32; Cityscapes::LOGITS_SHAPE.iter().product()];
            model.run(input, arena.as_f32_mut(), &mut logits).unwrap();
            logits
        })
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn eight_threads_share_one_model_with_their_own_arenas() {
    let model = Cityscapes::new();
    let inputs = inputs();
    let expected = serial(&model, &inputs);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (model, inputs, expected) = (&model, &inputs, &expected);
            scope.spawn(move || {
                let mut arena = Cityscapes::new_arena();
                let mut logits = vec![0.0f32; Cityscapes::LOGITS_SHAPE.iter().product()];
                for k in 0..INFERENCES {
                    let i = (t * 5 + k) % INPUTS;
                    model.run(&inputs[i], arena.as_f32_mut(), &mut logits).unwrap();
                    assert!(same_bits(&logits, &expected[i]), "thread {t}, inference {k} (input {i}) differs");
                }
            });
        }
    });
    eprintln!(
        "concurrent use: {THREADS} threads x {INFERENCES} inferences of Cityscapes 64x128, bit-identical, {:.0} ms wall",
        started.elapsed().as_secs_f64() * 1e3
    );
}

#[test]
fn one_pool_driven_from_two_threads_at_once() {
    let model = Cityscapes::new();
    let inputs = inputs();
    let expected = serial(&model, &inputs);
    let pool = cgnet::runtime::ThreadPool::new(3).unwrap();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..2 {
            let (model, inputs, expected, pool) = (&model, &inputs, &expected, &pool);
            scope.spawn(move || {
                let mut arena = Cityscapes::new_arena();
                let mut logits = vec![0.0f32; Cityscapes::LOGITS_SHAPE.iter().product()];
                for k in 0..INFERENCES {
                    let i = (t * 7 + k) % INPUTS;
                    model.run_parallel(&inputs[i], arena.as_f32_mut(), &mut logits, Some(pool)).unwrap();
                    assert!(same_bits(&logits, &expected[i]), "caller {t}, inference {k} (input {i}) differs");
                }
            });
        }
    });
    eprintln!(
        "shared pool: 2 callers x {INFERENCES} inferences on one 3-thread pool, bit-identical, {:.0} ms wall",
        started.elapsed().as_secs_f64() * 1e3
    );
}

/// The same in C: the emitted model (c-avx2 where the CPU has it, else
/// c-scalar) used by 8 pthreads at once (`tests/c/concurrent_use.c`).
#[test]
fn eight_c_threads_share_one_emitted_model() {
    use cgnet_codegen::back::c::{self, toolchain, CTarget, FileContents, Options};
    let target = if cgnet::runtime::kernels::Isa::Avx2.is_supported() { CTarget::Avx2 } else { CTarget::Scalar };
    let toolchain = match toolchain::Toolchain::find(target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("SKIPPED the C concurrency test: {e}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let golden = common::load("cityscapes_m3n21_64x128");
    let model = cgnet_codegen::back::compile(&golden.spec, &golden.graph, "test").unwrap();
    for f in c::emit(&model, &Options { target, weights_blob: true }).unwrap() {
        match f.contents {
            FileContents::Text(t) => std::fs::write(dir.path().join(&f.name), t).unwrap(),
            FileContents::Binary(b) => std::fs::write(dir.path().join(&f.name), b).unwrap(),
        }
    }
    let (n, u) = (&model.name, model.name.to_uppercase());
    let program = include_str!("c/concurrent_use.c")
        .replace("MODEL.h", &format!("{n}.h"))
        .replace("MODEL_LOWER", n)
        .replace("MODEL_", &format!("{u}_"))
        .replace("model_", &format!("{n}_"));
    std::fs::write(dir.path().join("concurrent_use.c"), program).unwrap();
    let sources = [format!("{n}.c"), "concurrent_use.c".to_string()];
    let exe = toolchain.compile(dir.path(), &sources, "concurrent_use", &[]).unwrap();
    let out = std::process::Command::new(&exe).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("concurrent use in C ({}): {}", target.name(), stdout.trim());
}
