//! One battery for every kernel variant: each runtime kernel (portable and
//! AVX2 + FMA, AVX-512F and NEON where the CPU has them) and each C kernel of `kernels.c`
//! (c-scalar, c-avx2, c-avx512 where the CPU has it, c-neon under qemu; serially and on 3 threads of the
//! pthread pool) against the reference interpreter's kernels, on odd widths,
//! 3 / 35 / 131 channels, dilations 1 / 2 / 4, strides 1 / 2, NCHW and
//! padded-NHWC sources, and full epilogues. A failure names the first outlier
//! and the worst distance in ULPs.

use cgnet_codegen::back::c::toolchain::{self, BatteryCase};
use cgnet_codegen::back::c::CTarget;
use cgnet_codegen::back::program::{pack_conv, pack_winograd};
use cgnet_codegen::interp::kernels::{self as reference, ConvGeometry, Tensor};
use cgnet_codegen::testing::Rng;
use cgnet_runtime::kernels::{check_group, Exec, Isa, Memory};
use cgnet_runtime::program::{self as p, Act, Epilogue, Mem, Step, View, ALL_ROWS};
use cgnet_runtime::ThreadPool;

/// Relative tolerance against the reference (accumulation order differs).
const TOLERANCE: f32 = 2e-5;

/// Threads of the parallel runs (odd, so row splits are uneven).
const C_THREADS: usize = 3;

/// Where a step runs: a runtime kernel variant, or the emitted C of a target.
#[derive(Clone, Copy, Debug)]
enum Engine {
    Rust(Isa),
    C(CTarget),
}

/// Every engine this machine can run; prints `SKIPPED` for the others. On
/// AArch64 (tested under qemu, slowly) only the Rust NEON kernels: the x86-64
/// run covers the portable kernels and every C target, c-neon included.
fn engines() -> Vec<Engine> {
    let mut engines = Vec::new();
    if cfg!(target_arch = "aarch64") {
        eprintln!("SKIPPED the rust Scalar and every C battery on AArch64: the x86-64 run covers them");
        return vec![Engine::Rust(Isa::Neon)];
    }
    for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon] {
        if isa.is_supported() {
            engines.push(Engine::Rust(isa));
        } else if isa == Isa::Avx512 && cfg!(target_arch = "x86_64") {
            eprintln!("SKIPPED the rust Avx512 battery (no AVX-512 on this CPU)");
        }
    }
    for target in [CTarget::Scalar, CTarget::Avx2, CTarget::Avx512, CTarget::Neon] {
        match toolchain::Toolchain::find(target) {
            Err(e) => eprintln!("SKIPPED the {} battery: {e}", target.name()),
            Ok(_) if target == CTarget::Avx2 && !Isa::Avx2.is_supported() => {
                eprintln!("SKIPPED the c-avx2 battery: this CPU has no AVX2")
            }
            Ok(_) if target == CTarget::Avx512 && !Isa::Avx512.is_supported() => {
                eprintln!("SKIPPED the c-avx512 battery (no AVX-512 on this CPU)")
            }
            Ok(_) => engines.push(Engine::C(target)),
        }
    }
    engines
}

/// Checks made at once for runtime kernels, and collected for C, which runs
/// every case of a test in one program per target (compiling per case would
/// take minutes).
#[derive(Default)]
struct Battery {
    pending: Vec<(CTarget, World, View, Tensor, String)>,
}

impl Battery {
    fn check(&mut self, engine: Engine, world: World, dst: View, want: &Tensor, what: String) {
        match engine {
            Engine::Rust(_) => assert_close(&world.read(dst), want, &what),
            Engine::C(target) => self.pending.push((target, world, dst, want.clone(), what)),
        }
    }

    /// Runs the collected C cases: each must match the reference serially and
    /// on `C_THREADS` threads, and the two runs must agree bit for bit.
    fn finish(self) {
        for target in [CTarget::Scalar, CTarget::Avx2, CTarget::Avx512, CTarget::Neon] {
            let mut checks: Vec<_> = self.pending.iter().filter(|p| p.0 == target).collect();
            if checks.is_empty() {
                continue;
            }
            let cases: Vec<BatteryCase> = checks
                .iter()
                .map(|(_, w, ..)| BatteryCase {
                    groups: w.groups.clone(),
                    arena: w.arena.clone(),
                    input: w.input.clone(),
                    weights: w.weights.clone(),
                })
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let results = toolchain::run_battery(target, &cases, C_THREADS, dir.path()).unwrap();
            for ((_, world, dst, want, what), result) in checks.drain(..).zip(results) {
                let read = |arena: Vec<f32>| World { arena, ..world.clone() }.read(*dst);
                let (serial, parallel) = (read(result.serial), read(result.parallel));
                assert_close(&serial, want, &format!("{what} serial"));
                assert_close(&parallel, want, &format!("{what} on {C_THREADS} threads"));
                assert!(
                    serial.data.iter().zip(&parallel.data).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{what}: {C_THREADS} threads differ from one"
                );
            }
        }
    }
}

fn random(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(lo, hi)).collect()
}

/// A test world: packed weights, an arena, the caller's input, and the steps
/// run on them so far, in their groups (kept for the C engines, which run them later).
#[derive(Clone, Default)]
struct World {
    weights: Vec<f32>,
    arena: Vec<f32>,
    input: Vec<f32>,
    groups: Vec<Vec<Step>>,
}

impl World {
    fn push_weights(&mut self, values: &[f32]) -> usize {
        self.weights.resize(self.weights.len().next_multiple_of(16), 0.0);
        let at = self.weights.len();
        self.weights.extend_from_slice(values);
        self.weights.extend_from_slice(&[0.0; 16]);
        at
    }

    /// Depthwise 3x3 weights `[c][9]`, packed `[9][c padded]`.
    fn depthwise(&mut self, k: &[f32], c: usize) -> usize {
        let c_pad = c.next_multiple_of(8) + 8;
        let mut out = vec![0.0; 9 * c_pad];
        for ch in 0..c {
            for t in 0..9 {
                out[t * c_pad + ch] = k[ch * 9 + t];
            }
        }
        self.push_weights(&out)
    }

    /// A per-channel vector, zero-padded as the packer does.
    fn per_channel(&mut self, values: &[f32]) -> usize {
        let mut v = values.to_vec();
        v.resize(values.len().next_multiple_of(8) + 8, 0.0);
        self.push_weights(&v)
    }

    /// An arena buffer for a `c x h x w` tensor, NHWC with the padded stride, holding `t`.
    fn nhwc(&mut self, t: &Tensor, channel_offset: usize, stride: usize) -> View {
        let base = self.arena.len().next_multiple_of(16);
        self.arena.resize(base + stride * t.h * t.w + 16, f32::NAN);
        let v = View {
            mem: Mem::Arena,
            offset: base + channel_offset,
            c: t.c,
            h: t.h,
            w: t.w,
            row_stride: t.w * stride,
            pixel_stride: stride,
            channel_stride: 1,
            row_mask: ALL_ROWS,
        };
        for c in 0..t.c {
            for y in 0..t.h {
                for x in 0..t.w {
                    self.arena[v.at(c, y, x)] = t.at(c, y, x);
                }
            }
        }
        v
    }

    /// The caller's NCHW input holding `t`.
    fn nchw_input(&mut self, t: &Tensor) -> View {
        self.input = t.data.clone();
        View {
            mem: Mem::Input,
            offset: 0,
            c: t.c,
            h: t.h,
            w: t.w,
            row_stride: t.w,
            pixel_stride: 1,
            channel_stride: t.h * t.w,
            row_mask: ALL_ROWS,
        }
    }

    fn read(&self, v: View) -> Tensor {
        let mut t = Tensor::zeros(v.c, v.h, v.w);
        for c in 0..v.c {
            for y in 0..v.h {
                for x in 0..v.w {
                    *t.at_mut(c, y, x) = self.arena[v.at(c, y, x)];
                }
            }
        }
        t
    }

    fn run(&mut self, engine: Engine, step: &Step) {
        self.run_group(engine, std::slice::from_ref(step));
    }

    /// Runs steps as one group (chunk by chunk; `Exec::steps`, `cg_exec_group`).
    fn run_group(&mut self, engine: Engine, group: &[Step]) {
        self.groups.push(group.to_vec());
        if let Engine::Rust(isa) = engine {
            // Serially, and on `C_THREADS` threads from the same start: bit for bit the same.
            static POOL: std::sync::OnceLock<ThreadPool> = std::sync::OnceLock::new();
            let pool = POOL.get_or_init(|| ThreadPool::new(C_THREADS).unwrap());
            let mut parallel = self.arena.clone();
            Exec::new(Memory::new(&mut parallel, &self.input), &self.weights, isa, Some(pool)).steps(group).unwrap();
            Exec::new(Memory::new(&mut self.arena, &self.input), &self.weights, isa, None).steps(group).unwrap();
            let same = self.arena.iter().zip(&parallel).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{group:?} on {engine:?}: {C_THREADS} threads differ from one");
        }
    }
}

/// A full epilogue `prelu -> affine -> prelu` with its reference.
struct TestEpilogue {
    epilogue: Epilogue,
    slope: Vec<f32>,
    scale: Vec<f32>,
    shift: Vec<f32>,
    slope2: Vec<f32>,
}

impl TestEpilogue {
    fn new(world: &mut World, rng: &mut Rng, c: usize) -> Self {
        let (slope, scale, shift, slope2) =
            (random(rng, c, 0.0, 0.5), random(rng, c, 0.5, 1.5), random(rng, c, -0.5, 0.5), random(rng, c, 0.0, 0.5));
        let epilogue = Epilogue {
            act: Act::Prelu(world.per_channel(&slope)),
            affine: Some((world.per_channel(&scale), world.per_channel(&shift))),
            act2: Act::Prelu(world.per_channel(&slope2)),
        };
        Self { epilogue, slope, scale, shift, slope2 }
    }

    /// A PReLU alone (a conv's folded BatchNorm and activation), which some
    /// kernels specialise.
    fn prelu_only(world: &mut World, rng: &mut Rng, c: usize) -> Self {
        let slope = random(rng, c, 0.0, 0.5);
        let epilogue = Epilogue { act: Act::Prelu(world.per_channel(&slope)), affine: None, act2: Act::None };
        Self { epilogue, slope, scale: vec![1.0; c], shift: vec![0.0; c], slope2: vec![1.0; c] }
    }

    fn apply(&self, t: &mut Tensor) {
        reference::prelu(t, &self.slope);
        if self.epilogue.affine.is_some() {
            reference::affine(t, &self.scale, &self.shift);
        }
        if self.epilogue.act2 != Act::None {
            reference::prelu(t, &self.slope2);
        }
    }
}

fn ulps(a: f32, b: f32) -> u32 {
    (a.to_bits() as i32).wrapping_sub(b.to_bits() as i32).unsigned_abs()
}

/// Compares with the named tolerance, reporting the first outlier and the worst ULP distance.
fn assert_close(ours: &Tensor, reference: &Tensor, what: &str) {
    let scale = reference.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst_ulps = ours.data.iter().zip(&reference.data).map(|(a, b)| ulps(*a, *b)).max().unwrap_or(0);
    if let Some(i) = (0..ours.data.len()).find(|&i| !((ours.data[i] - reference.data[i]).abs() <= TOLERANCE * scale)) {
        let (c, rest) = (i / (ours.h * ours.w), i % (ours.h * ours.w));
        panic!(
            "{what}: first outlier at (c {c}, y {}, x {}): {} vs reference {} (tolerance {TOLERANCE} x {scale}); worst distance {worst_ulps} ULPs",
            rest / ours.w,
            rest % ours.w,
            ours.data[i],
            reference.data[i]
        );
    }
}

#[test]
fn conv_battery() {
    let mut battery = Battery::default();
    let mut rng = Rng::new(1);
    for &(ci, co) in &[(32, 32), (3, 35), (35, 3), (131, 35), (35, 131), (8, 16), (64, 19)] {
        for &(kernel, stride, dilation) in &[(3, 1, 1), (3, 2, 1), (1, 1, 1), (3, 1, 2), (3, 1, 4)] {
            for &(h, w) in &[(1, 1), (4, 5), (9, 13), (7, 31)] {
                for nchw in [false, true] {
                    let x = Tensor { c: ci, h, w, data: random(&mut rng, ci * h * w, -2.0, 2.0) };
                    let weight = random(&mut rng, co * ci * kernel * kernel, -0.3, 0.3);
                    let bias = random(&mut rng, co, -0.5, 0.5);
                    let g = ConvGeometry { kernel, stride, dilation, groups: 1 };
                    let mut expected = reference::conv2d(&x, &weight, Some(&bias), co, g);
                    // One part of a split convolution: the sums start from an addend (no bias).
                    let mut partial = reference::conv2d(&x, &weight, None, co, g);
                    let addend = Tensor { data: random(&mut rng, partial.data.len(), -2.0, 2.0), ..partial.clone() };
                    partial.data.iter_mut().zip(&addend.data).for_each(|(p, a)| *p += a);
                    for engine in engines() {
                        let mut world = World::default();
                        let epi = TestEpilogue::new(&mut world, &mut rng.clone_seeded(), co);
                        let src =
                            if nchw { world.nchw_input(&x) } else { world.nhwc(&x, 0, ci.next_multiple_of(8) + 8) };
                        // Winograd where the kernel allows it (3x3, stride 1, at most 64 channels).
                        let winograd = (kernel, stride, dilation) == (3, 1, 1) && ci.max(co) <= 64;
                        let packed =
                            if winograd { pack_winograd(&weight, co, ci) } else { pack_conv(&weight, co, ci, kernel) };
                        let weights = world.push_weights(&packed);
                        let bias_at = world.per_channel(&bias);
                        let out = Tensor::zeros(co, expected.h, expected.w);
                        // Write into a slice of a wider buffer, as concat elimination does.
                        let dst = world.nhwc(&out, 3, (co + 3).next_multiple_of(8));
                        let conv = p::Conv {
                            src,
                            dst,
                            kernel,
                            stride,
                            dilation,
                            weights,
                            bias: bias_at,
                            add: None,
                            epilogue: epi.epilogue,
                        };
                        let step = if winograd { Step::Winograd(conv) } else { Step::Conv(conv) };
                        world.run(engine, &step);
                        let mut want = expected.clone();
                        epi.apply(&mut want);
                        let what = format!(
                            "conv {ci}->{co} k{kernel} s{stride} d{dilation} {h}x{w} nchw={nchw} winograd={winograd} {engine:?}"
                        );
                        battery.check(engine, world, dst, &want, what);
                        if !winograd {
                            // The addend in the destination itself (in place), as the planner stores a split convolution.
                            let mut world = World::default();
                            let epi = TestEpilogue::new(&mut world, &mut rng.clone_seeded(), co);
                            let src = world.nhwc(&x, 0, ci.next_multiple_of(8) + 8);
                            let weights = world.push_weights(&packed);
                            let bias = world.per_channel(&bias);
                            let dst = world.nhwc(&addend, 3, (co + 3).next_multiple_of(8));
                            let epilogue = epi.epilogue;
                            let conv =
                                p::Conv { src, dst, kernel, stride, dilation, weights, bias, add: Some(dst), epilogue };
                            world.run(engine, &Step::Conv(conv));
                            let mut want = partial.clone();
                            epi.apply(&mut want);
                            let what = format!(
                                "conv {ci}->{co} k{kernel} s{stride} d{dilation} {h}x{w} onto an addend {engine:?}"
                            );
                            battery.check(engine, world, dst, &want, what);
                        }
                    }
                    expected.data.clear();
                }
            }
        }
    }
    battery.finish();
}

#[test]
fn depthwise_pair_battery() {
    let mut battery = Battery::default();
    let mut rng = Rng::new(2);
    for &c in &[3, 35, 131, 64] {
        for &dilation in &[1, 2, 4] {
            for &(h, w) in &[(1, 1), (5, 3), (9, 13), (6, 31)] {
                let x = Tensor { c, h, w, data: random(&mut rng, c * h * w, -2.0, 2.0) };
                let (wl, ws) = (random(&mut rng, c * 9, -0.5, 0.5), random(&mut rng, c * 9, -0.5, 0.5));
                let (bl, bs) = (random(&mut rng, c, -0.5, 0.5), random(&mut rng, c, -0.5, 0.5));
                let loc = reference::conv2d(
                    &x,
                    &wl,
                    Some(&bl),
                    c,
                    ConvGeometry { kernel: 3, stride: 1, dilation: 1, groups: c },
                );
                let sur = reference::conv2d(
                    &x,
                    &ws,
                    Some(&bs),
                    c,
                    ConvGeometry { kernel: 3, stride: 1, dilation, groups: c },
                );
                let joint = Tensor { c: 2 * c, h, w, data: [loc.data, sur.data].concat() };
                for (engine, prelu_only) in engines().into_iter().flat_map(|e| [(e, false), (e, true)]) {
                    let mut world = World::default();
                    let rng = &mut Rng::new(c as u64 + dilation as u64);
                    let epi = if prelu_only {
                        TestEpilogue::prelu_only(&mut world, rng, 2 * c)
                    } else {
                        TestEpilogue::new(&mut world, rng, 2 * c)
                    };
                    let (loc_weights, sur_weights) = (world.depthwise(&wl, c), world.depthwise(&ws, c));
                    let (loc_bias, sur_bias) = (world.per_channel(&bl), world.per_channel(&bs));
                    let src = world.nhwc(&x, 0, c.next_multiple_of(8));
                    let dst = world.nhwc(&Tensor::zeros(2 * c, h, w), 0, (2 * c).next_multiple_of(8));
                    let step = Step::DepthwisePair(p::DepthwisePair {
                        src,
                        dst,
                        dilation,
                        loc_weights,
                        sur_weights,
                        loc_bias,
                        sur_bias,
                        epilogue: epi.epilogue,
                    });
                    world.run(engine, &step);
                    let mut want = joint.clone();
                    epi.apply(&mut want);
                    battery.check(
                        engine,
                        world,
                        dst,
                        &want,
                        format!(
                            "depthwise pair c{c} d{dilation} {h}x{w}{} {engine:?}",
                            if prelu_only { " PReLU only" } else { "" }
                        ),
                    );
                }
            }
        }
    }
    battery.finish();
}

#[test]
fn pool_copy_and_global_context_battery() {
    let mut battery = Battery::default();
    let mut rng = Rng::new(3);
    for &c in &[3, 35, 131] {
        // (3, 70): whole vectors of output pixels of a planar source's channel, even on 16 lanes.
        for &(h, w) in &[(1, 1), (5, 3), (9, 13), (8, 31), (3, 70)] {
            let x = Tensor { c, h, w, data: random(&mut rng, c * h * w, -2.0, 2.0) };
            let r = Tensor { c, h, w, data: random(&mut rng, c * h * w, -2.0, 2.0) };
            for engine in engines() {
                // Average pool from the caller's NCHW input into a slice of a wider buffer.
                let mut world = World::default();
                let epi = TestEpilogue::new(&mut world, &mut Rng::new(7), c);
                let src = world.nchw_input(&x);
                let pooled = reference::avg_pool_3s2(&x);
                let dst = world.nhwc(&Tensor::zeros(c, pooled.h, pooled.w), 5, (c + 5).next_multiple_of(8));
                // Its result also teed, normalised, into a slice of another buffer.
                let tee_epi = TestEpilogue::new(&mut world, &mut Rng::new(8), c);
                let tee = world.nhwc(&Tensor::zeros(c, pooled.h, pooled.w), 2, (c + 2).next_multiple_of(8));
                let pool = p::AvgPool {
                    tee: Some(tee),
                    tee_epilogue: tee_epi.epilogue,
                    ..p::AvgPool::new(src, dst, epi.epilogue)
                };
                world.run(engine, &Step::AvgPool(pool));
                let mut want = pooled.clone();
                epi.apply(&mut want);
                let mut want_teed = want.clone();
                tee_epi.apply(&mut want_teed);
                let what = format!("avg pool c{c} {h}x{w} {engine:?}");
                battery.check(engine, world.clone(), dst, &want, what.clone());
                battery.check(engine, world, tee, &want_teed, format!("{what}, teed"));

                // F_glo: squeeze, then scale + residual add.
                let hidden = 4;
                let (w1, b1) = (random(&mut rng, hidden * c, -0.5, 0.5), random(&mut rng, hidden, -0.5, 0.5));
                let (w2, b2) = (random(&mut rng, c * hidden, -0.5, 0.5), random(&mut rng, c, -0.5, 0.5));
                let mut world = World::default();
                let xv = world.nhwc(&x, 0, c.next_multiple_of(8));
                let rv = world.nhwc(&r, 0, c.next_multiple_of(8));
                let dst = world.nhwc(&Tensor::zeros(c, h, w), 0, c.next_multiple_of(8));
                let scratch = world.arena.len();
                world.arena.resize(scratch + h * c + 2 * c + hidden + 16, f32::NAN);
                let squeeze = p::Squeeze {
                    x: xv,
                    hidden,
                    fc1_weight: world.push_weights(&w1),
                    fc1_bias: world.push_weights(&b1),
                    fc2_weight: world.push_weights(&w2),
                    fc2_bias: world.push_weights(&b2),
                    scratch,
                };
                world.run(engine, &Step::ChannelSums(p::ChannelSums { x: xv, sums: scratch }));
                world.run(engine, &Step::Squeeze(squeeze));
                // The result also teed, normalised, into a slice of a wider buffer.
                let tee_epi = TestEpilogue::new(&mut world, &mut Rng::new(9), c);
                let tee = world.nhwc(&Tensor::zeros(c, h, w), 3, (c + 3).next_multiple_of(8));
                let copy = p::Elementwise {
                    scale: Some(squeeze.scale_offset()),
                    add: Some(rv),
                    tee: Some(tee),
                    tee_epilogue: tee_epi.epilogue,
                    ..p::Elementwise::copy(xv, dst, Epilogue::NONE)
                };
                world.run(engine, &Step::Elementwise(copy));
                let scale = reference::global_context_scale(&x, (&w1, &b1), (&w2, &b2));
                let want = reference::add(&r, &reference::channel_scale(&x, &scale));
                let mut want_teed = want.clone();
                tee_epi.apply(&mut want_teed);
                let what = format!("global context c{c} {h}x{w} {engine:?}");
                battery.check(engine, world.clone(), dst, &want, what.clone());
                battery.check(engine, world, tee, &want_teed, format!("{what}, teed"));
            }
        }
    }
    battery.finish();
}

/// Steps that run as groups, chunk by chunk (`Exec::steps`, `cg_exec_group`), as
/// the compiler groups a CG block's: F_glo's excitation (in place) with the 1x1
/// convolution that reads it, then a depthwise pair with a 1x1 reduction of
/// its output and that result's channel sums. Each engine must give, serially
/// and on 3 threads, what the portable kernels give running the steps one by
/// one; the Rust engines the very bits they give one by one.
#[test]
fn group_battery() {
    let mut battery = Battery::default();
    let mut rng = Rng::new(4);
    for &(c, h, w) in &[(16, 9, 13), (35, 8, 31), (64, 33, 5)] {
        let mut world = World::default();
        let tensor = |rng: &mut Rng, c: usize| Tensor { c, h, w, data: random(rng, c * h * w, -2.0, 2.0) };
        let (x, r) = (tensor(&mut rng, c), tensor(&mut rng, c));
        let stride = c.next_multiple_of(8);
        let (xv, rv) = (world.nhwc(&x, 0, stride), world.nhwc(&r, 0, stride));
        let scale = world.arena.len();
        world.arena.extend(random(&mut rng, c, 0.0, 1.0));
        let excitation = Step::Elementwise(p::Elementwise {
            scale: Some(scale),
            add: Some(rv),
            ..p::Elementwise::copy(xv, xv, TestEpilogue::new(&mut world, &mut rng, c).epilogue)
        });
        let conv1x1 = |world: &mut World, rng: &mut Rng, src: View, co: usize| {
            let weights = world.push_weights(&pack_conv(&random(rng, co * src.c, -0.3, 0.3), co, src.c, 1));
            let bias = world.per_channel(&random(rng, co, -0.5, 0.5));
            let dst = world.nhwc(&Tensor::zeros(co, h, w), 0, co.next_multiple_of(8));
            let epilogue = TestEpilogue::new(world, rng, co).epilogue;
            p::Conv { src, dst, kernel: 1, stride: 1, dilation: 1, weights, bias, add: None, epilogue }
        };
        let reduce = conv1x1(&mut world, &mut rng, xv, c / 2 + 1);
        let c1 = reduce.dst;
        let joint = world.nhwc(&Tensor::zeros(2 * c1.c, h, w), 0, (2 * c1.c).next_multiple_of(8));
        let pair = p::DepthwisePair {
            src: c1,
            dst: joint,
            dilation: 2,
            loc_weights: world.depthwise(&random(&mut rng, c1.c * 9, -0.5, 0.5), c1.c),
            sur_weights: world.depthwise(&random(&mut rng, c1.c * 9, -0.5, 0.5), c1.c),
            loc_bias: world.per_channel(&random(&mut rng, c1.c, -0.5, 0.5)),
            sur_bias: world.per_channel(&random(&mut rng, c1.c, -0.5, 0.5)),
            epilogue: TestEpilogue::new(&mut world, &mut rng, 2 * c1.c).epilogue,
        };
        let second = conv1x1(&mut world, &mut rng, joint, c);
        let sums_at = world.arena.len();
        world.arena.resize(sums_at + h * c + 16, f32::NAN);
        let sums = View {
            mem: Mem::Arena,
            offset: sums_at,
            c,
            h,
            w: 1,
            row_stride: c,
            pixel_stride: 0,
            channel_stride: 1,
            row_mask: ALL_ROWS,
        };
        let steps = [
            excitation,
            Step::Conv(reduce),
            Step::DepthwisePair(pair),
            Step::Conv(second),
            Step::ChannelSums(p::ChannelSums { x: second.dst, sums: sums_at }),
        ];
        // What the compiler makes of these steps, and why it cannot make more.
        assert_eq!(cgnet_codegen::back::program::groups(&steps), [0..2, 2..5]);
        assert!(check_group(&steps[1..3]).is_err(), "the pair reads rows around its own");
        let outputs = [xv, c1, joint, second.dst, sums];

        let mut reference_world = world.clone();
        for step in &steps {
            reference_world.run(Engine::Rust(Isa::Scalar), step);
        }
        for engine in engines() {
            let mut grouped = world.clone();
            grouped.run_group(engine, &steps[..2]);
            grouped.run_group(engine, &steps[2..]);
            if let Engine::Rust(_) = engine {
                let mut alone = world.clone();
                for step in &steps {
                    alone.run(engine, step);
                }
                let same = alone.arena.iter().zip(&grouped.arena).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "groups of c{c} {h}x{w} on {engine:?} differ from the steps one by one");
            }
            for (i, view) in outputs.into_iter().enumerate() {
                let what = format!("groups of c{c} {h}x{w} {engine:?}, output {i}");
                battery.check(engine, grouped.clone(), view, &reference_world.read(view), what);
            }
        }
    }
    battery.finish();
}

trait CloneSeeded {
    fn clone_seeded(&mut self) -> Rng;
}

impl CloneSeeded for Rng {
    /// A new generator seeded from this one, so every variant sees the same epilogue.
    fn clone_seeded(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}
