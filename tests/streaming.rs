//! Streamed regions (`cgnet_codegen::stream`): the same program computed band
//! by band through rings gives bit for bit what the unstreamed program gives,
//! on every kernel variant, from floats and from a picture, serially and on
//! 1..=8 threads, in Rust and in emitted C; and it needs a smaller arena.

mod common;

use cgnet::runtime::kernels::{Input, Isa, ParallelFor};
use cgnet::runtime::ThreadPool;
use cgnet_codegen::back::c::{toolchain, CTarget, Options};
use cgnet_codegen::back::{compile_streaming, native, CompiledModel};
use cgnet_codegen::stream::Streaming;

/// Each golden case compiled with every streamable region streamed (no
/// minimum saving) and without streaming.
fn both(name: &str) -> (common::Golden, CompiledModel, CompiledModel, Vec<u8>) {
    let golden = common::load(name);
    let (spec, picture, _) = common::picture(&golden);
    let streamed = compile_streaming(&spec, &golden.graph, "test", Streaming::Always).unwrap();
    let whole = compile_streaming(&spec, &golden.graph, "test", Streaming::Off).unwrap();
    assert!(!whole.is_streamed(), "{name}: Streaming::Off streams nothing");
    (golden, streamed, whole, picture)
}

#[test]
fn streamed_programs_match_unstreamed_ones_bit_for_bit_in_rust() {
    let mut streamed_cases = 0;
    for name in common::all_cases() {
        let (golden, streamed, whole, picture) = both(name);
        if !streamed.is_streamed() {
            eprintln!("{name}: no region streams (its arena peak is outside every streamable run)");
            continue;
        }
        streamed_cases += 1;
        assert!(
            streamed.arena_bytes < whole.arena_bytes,
            "{name}: streaming shrinks the arena ({} -> {})",
            whole.arena_bytes,
            streamed.arena_bytes
        );
        eprintln!("{name}: arena {} bytes unstreamed, {} streamed", whole.arena_bytes, streamed.arena_bytes);
        for isa in [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon] {
            if !isa.is_supported() || (isa == Isa::Scalar && cfg!(target_arch = "aarch64")) {
                eprintln!("SKIPPED {isa:?} on {name} (not this CPU's, or tested on x86-64)");
                continue;
            }
            let floats = Input::Floats(&golden.input.data);
            let reference = native::execute(&whole, isa, None, floats).unwrap();
            let pools: Vec<Option<ThreadPool>> = if cfg!(target_arch = "aarch64") {
                vec![None]
            } else {
                (1..=8).map(|t| Some(ThreadPool::new(t).unwrap())).collect()
            };
            for pool in std::iter::once(None).chain(pools) {
                let parallel = pool.as_ref().map(|p| p as &dyn ParallelFor);
                let threads = pool.as_ref().map_or(0, |p| p.threads());
                let out = native::execute(&streamed, isa, parallel, floats).unwrap();
                let what = format!("{name} {isa:?} streamed, {threads} threads");
                assert_eq!(common::bits(&out.logits), common::bits(&reference.logits), "{what}: logits");
                assert_eq!(common::bits(&out.scores), common::bits(&reference.scores), "{what}: scores");
                assert_eq!(out.labels, reference.labels, "{what}: labels");
            }
            let input = Input::Rgb8 { pixels: &picture, normalisation: streamed.normalisation() };
            let from_picture = native::execute(&streamed, isa, None, input).unwrap();
            let reference = native::execute(&whole, isa, None, input).unwrap();
            assert_eq!(
                common::bits(&from_picture.logits),
                common::bits(&reference.logits),
                "{name} {isa:?} from the picture"
            );
            eprintln!("{name} {isa:?}: streamed = unstreamed, bit for bit (floats on 0..=8 threads, picture)");
        }
    }
    assert!(streamed_cases > 0, "some golden case streams a region");
}

#[test]
fn streamed_programs_match_unstreamed_ones_bit_for_bit_in_c() {
    let targets = [CTarget::Scalar, CTarget::Avx2, CTarget::Avx512, CTarget::Neon];
    for target in targets {
        if let Err(e) = toolchain::Toolchain::find(target) {
            eprintln!("SKIPPED {}: {e}", target.name());
            continue;
        }
        if target == CTarget::Avx512 && !Isa::Avx512.is_supported() {
            eprintln!("SKIPPED {} (no AVX-512 on this CPU)", target.name());
            continue;
        }
        for name in common::all_cases() {
            let (golden, streamed, whole, _) = both(name);
            // Under qemu (slow), the small cases.
            let small = golden.input.h * golden.input.w <= 128 * 128;
            if !streamed.is_streamed() || (target == CTarget::Neon && !small) {
                continue;
            }
            let build = |model: &CompiledModel| {
                let dir = tempfile::tempdir().unwrap();
                let exe = toolchain::build(model, &Options { target, weights_blob: true }, dir.path()).unwrap();
                (dir, exe)
            };
            let input = &golden.input.data;
            let (dir, exe) = build(&whole);
            let reference = toolchain::run(target, &exe, dir.path(), input, 1, 0).unwrap();
            let (dir, exe) = build(&streamed);
            for threads in [1, 3, 8] {
                let out = toolchain::run(target, &exe, dir.path(), input, threads, 0).unwrap();
                let what = format!("{name} {} streamed, {threads} threads", target.name());
                assert_eq!(common::bits(&out.logits), common::bits(&reference.logits), "{what}: logits");
                assert_eq!(out.labels, reference.labels, "{what}: labels");
            }
            eprintln!("{name} {}: streamed = unstreamed, bit for bit (1, 3, 8 threads)", target.name());
        }
    }
}

/// The benchmark network at 512x1024 streams stage 1 and the stage-2 blocks
/// under the CPU targets' default (`Streaming::Auto`), every region's schedule
/// replays against its rings, and the arena is below the unstreamed bound.
#[test]
fn the_benchmark_network_streams_its_peak() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/cityscapes_512x1024.cgnet");
    let spec = cgnet_codegen::syntax::parse_file(std::path::Path::new(path)).unwrap().spec;
    let mut graph = cgnet_codegen::lower(&spec);
    cgnet_codegen::back::program::bind_zero_weights(&mut graph);
    let compilation = cgnet_codegen::back::program::compile_with_report(&spec, &graph, "zeros").unwrap();
    let plan = &compilation.plan;
    assert!(!plan.regions.is_empty(), "regions are streamed");
    assert!(
        plan.arena_lower_bound_bytes < plan.unstreamed_lower_bound_bytes,
        "{} < {}",
        plan.arena_lower_bound_bytes,
        plan.unstreamed_lower_bound_bytes
    );
    assert!(compilation.model.is_streamed());
    assert!(cgnet_codegen::plan::conflicts(plan).is_empty(), "no two live buffers overlap");
}
