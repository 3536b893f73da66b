//! The C backend beyond the goldens: the emitted snapshots compile under gcc
//! and clang with -Werror; a program written against the documented header
//! builds (gcc and clang, ISO and GNU C) and agrees with the reference and,
//! bit for bit, with the Rust kernels; the default model runs clean under
//! AddressSanitizer and UBSan; emitted code never calls malloc; the c-webgpu
//! host builds portably and agrees with the CPU.

mod common;

use std::path::Path;
use std::process::Command;

use cgnet::runtime::kernels::{Input, Isa};
use cgnet_codegen::back::c::{self, toolchain, CTarget, FileContents, Options};
use cgnet_codegen::back::{compile, native, CompiledModel};
use cgnet_codegen::testing::bind_random_weights;
use cgnet_codegen::{lower, ModelSpec};

const TARGETS: [CTarget; 4] = [CTarget::Scalar, CTarget::Avx2, CTarget::Avx512, CTarget::Neon];

/// A tiny model with random weights; its emitted code is what the snapshots hold.
fn tiny() -> CompiledModel {
    let mut spec = ModelSpec::cityscapes(16, 24);
    spec.name = Some("tiny".into());
    (spec.classes, spec.stage2_blocks, spec.stage3_blocks) = (3, 2, 2);
    let mut graph = lower(&spec);
    bind_random_weights(&mut graph, 5);
    compile(&spec, &graph, "0000 (snapshot weights)").unwrap()
}

fn write_files(model: &CompiledModel, options: &Options, dir: &Path) {
    for f in c::emit(model, options).unwrap() {
        match f.contents {
            FileContents::Text(t) => std::fs::write(dir.join(f.name), t).unwrap(),
            FileContents::Binary(b) => std::fs::write(dir.join(f.name), b).unwrap(),
        }
    }
}

fn tool_available(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn emitted_c_snapshots_and_they_compile_strictly() {
    let model = tiny();
    for target in TARGETS {
        let options = Options { target, weights_blob: false };
        let (h, src) = (c::header(&model, &options), c::source(&model, &options));
        insta::assert_snapshot!(format!("{}_h", target.name()), h);
        insta::assert_snapshot!(format!("{}_c", target.name()), src);
        // Compile exactly the snapshotted text, with every compiler that targets it.
        let dir = tempfile::tempdir().unwrap();
        write_files(&model, &options, dir.path());
        let compilers: &[&str] = match target {
            CTarget::Neon => &["aarch64-linux-gnu-gcc"],
            _ => &["gcc", "clang"],
        };
        for cc in compilers {
            if !tool_available(cc) {
                eprintln!("SKIPPED compiling {} with {cc}: not installed (.ci/run installs it)", target.name());
                continue;
            }
            let out = Command::new(cc)
                .current_dir(dir.path())
                .args(toolchain::STRICT_FLAGS)
                .args(target.flags())
                .args(["-c", "tiny.c", "tiny_weights.c"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{cc} {}: {}", target.name(), String::from_utf8_lossy(&out.stderr));
        }
    }
}

fn write_f32(path: &Path, data: &[f32]) {
    std::fs::write(path, data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

/// The bundled CamVid model (at the 96x128 of the crop case), emitted with embedded weights into `dir`.
fn camvid_in(dir: &Path, target: CTarget) -> (common::Golden, CompiledModel) {
    let mut golden = common::load("camvid_official_crop_96x128");
    golden.spec.name = Some("camvid".into());
    let model = compile(&golden.spec, &golden.graph, "camvid").unwrap();
    write_files(&model, &Options { target, weights_blob: false }, dir);
    (golden, model)
}

/// The demo program, built by gcc and clang in ISO C99 and in GNU mode (what
/// a build without `-std`, or CMake's default, gives), meets the golden and
/// gives the Rust kernels' logits bit for bit: the emitted C lets no compiler
/// fuse a multiply and an add that the kernels keep apart.
#[test]
fn a_program_written_against_the_header_builds_and_matches() {
    let dir = tempfile::tempdir().unwrap();
    let (golden, model) = camvid_in(dir.path(), CTarget::Avx2);
    let rust = Isa::Avx2
        .is_supported()
        .then(|| native::execute(&model, Isa::Avx2, None, Input::Floats(&golden.input.data)).unwrap().logits);
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c/camvid_demo.c");
    write_f32(&dir.path().join("input.bin"), &golden.input.data);
    for cc in ["gcc", "clang"] {
        if !tool_available(cc) {
            eprintln!("SKIPPED the demo built with {cc}: not installed (.ci/run installs it)");
            continue;
        }
        for std in ["-std=c99", "-std=gnu99"] {
            let what = format!("C program against camvid.h ({cc} {std})");
            let out = Command::new(cc)
                .current_dir(dir.path())
                .args([std, "-O2", "-Wall", "-Wextra", "-Werror", "-mavx2", "-mfma", "-I."])
                .args(if std == "-std=c99" { &["-pedantic"][..] } else { &[] })
                .arg(&demo)
                .args(["camvid.c", "camvid_weights.c", "-lm", "-o", "demo"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
            let run = Command::new(dir.path().join("demo"))
                .current_dir(dir.path())
                .args(["input.bin", "logits.bin", "labels.bin"])
                .output()
                .unwrap();
            assert!(run.status.success(), "{what}: {}", String::from_utf8_lossy(&run.stderr));
            let bytes = std::fs::read(dir.path().join("logits.bin")).unwrap();
            let g = &golden.logits;
            let logits = cgnet_codegen::Tensor {
                c: g.c,
                h: g.h,
                w: g.w,
                data: bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
            };
            let labels: Vec<i32> =
                std::fs::read(dir.path().join("labels.bin")).unwrap().iter().map(|l| i32::from(*l)).collect();
            golden.check(&logits, &labels, &what);
            match &rust {
                Some(rust) => {
                    assert!(
                        common::bits(&logits.data) == common::bits(rust),
                        "{what}: logits differ from the Rust kernels' (Avx2)"
                    );
                    eprintln!("{what}: bit-identical to the Rust kernels (Avx2)");
                }
                None => eprintln!("SKIPPED {what} against the Rust kernels: this CPU has no AVX2"),
            }
        }
    }
}

#[test]
fn default_model_runs_clean_under_sanitizers_and_never_allocates() {
    let dir = tempfile::tempdir().unwrap();
    let (golden, _) = camvid_in(dir.path(), CTarget::Avx2);
    let source = std::fs::read_to_string(dir.path().join("camvid.c")).unwrap();
    for banned in ["malloc", "calloc", "realloc", "free(", "printf"] {
        assert!(!source.contains(banned), "emitted C contains `{banned}`");
    }
    // No mutable globals: every file-scope static object is const (functions have parentheses).
    for line in source.lines().filter(|l| l.starts_with("static ") && !l.contains('(')) {
        assert!(line.starts_with("static const "), "mutable global: {line}");
    }
    let model = compile(&golden.spec, &golden.graph, "camvid").unwrap();
    std::fs::write(dir.path().join("harness.c"), toolchain::harness_source(&model, CTarget::Avx2, false)).unwrap();
    let out = Command::new("cc")
        .current_dir(dir.path())
        .args(toolchain::STRICT_FLAGS)
        .args(CTarget::Avx2.flags())
        .args(["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"])
        .args(["camvid.c", "camvid_weights.c", "harness.c", "-lm", "-lpthread", "-o", "harness"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    write_f32(&dir.path().join("input.bin"), &golden.input.data);
    // Two threads: the serial and the parallel paths both run (GC steps are serial).
    let run = Command::new(dir.path().join("harness")).arg(dir.path()).args(["2", "0"]).output().unwrap();
    assert!(run.status.success(), "sanitizers report:\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(!String::from_utf8_lossy(&run.stderr).contains("runtime error"));

    // The default pthread pool under ThreadSanitizer: as many threads as cores, and more.
    let out = Command::new("cc")
        .current_dir(dir.path())
        .args(toolchain::STRICT_FLAGS)
        .args(CTarget::Avx2.flags())
        .args(["-O1", "-g", "-fsanitize=thread"])
        .args(["camvid.c", "camvid_weights.c", "harness.c", "-lm", "-lpthread", "-o", "harness_tsan"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for threads in ["2", "3", "8"] {
        let run = Command::new(dir.path().join("harness_tsan")).arg(dir.path()).args([threads, "0"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success() && !stderr.contains("ThreadSanitizer"), "{threads} threads:\n{stderr}");
    }
}

/// Odd topologies (channel counts that are not multiples of 8, odd sizes, every
/// residual variant; large enough that steps are cut into several chunks)
/// through every C target (serially and on 2..8 threads) and every Rust kernel variant,
/// against the reference interpreter: the kernel battery at model level.
#[test]
fn odd_topologies_match_the_interpreter_on_every_target() {
    use cgnet_codegen::spec::{Activation, CgStage, Residual, Stage1};
    use cgnet_codegen::{interp, OutputKind};
    let mut specs = Vec::new();
    for (i, (residual, injection, activation, glo)) in [
        (Residual::Global, true, Activation::Prelu, true),
        (Residual::Local, false, Activation::Relu, true),
        (Residual::None, true, Activation::Prelu, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = ModelSpec::cityscapes(67 + 4 * i, 131 + 6 * i);
        s.name = Some(format!("odd{i}"));
        (s.classes, s.residual, s.input_injection, s.activation, s.global_context) =
            (3 + i, residual, injection, activation, glo);
        (s.stage2_blocks, s.stage3_blocks) = (2, 2 + i);
        s.stage1 = Stage1 { channels: 5 + 2 * i, convs: 2 };
        s.stage2 = CgStage { channels: 10, dilation: 2, reduction: 5 };
        s.stage3 = CgStage { channels: 22, dilation: 4 - i, reduction: 11 };
        specs.push(s);
    }
    for spec in specs {
        let mut graph = lower(&spec);
        bind_random_weights(&mut graph, 9);
        let input = cgnet_codegen::testing::image_like_input(spec.height, spec.width, 4);
        let reference = interp::run(&graph, &input).unwrap();
        let model = compile(&spec, &graph, "random").unwrap();
        let expect = |logits: Vec<f32>, what: &str| {
            let r = &reference[&OutputKind::Logits];
            let t = cgnet_codegen::Tensor { c: r.c, h: r.h, w: r.w, data: logits };
            let err = cgnet_codegen::testing::relative_error(&t, r);
            assert!(err <= 1e-4, "{what} on {spec:?}: relative logit error {err:e}");
        };
        assert!(model.steps.iter().filter(|s| s.chunks() > 1).count() > 3, "the threads have work to share");
        // Groups of steps are shared too, chunk by chunk.
        let shared_groups = model
            .called_steps()
            .filter(|(g, rows)| g.len() > 1 && cgnet::runtime::program::band_chunk_rows(g, rows.len()) < rows.len());
        let shared_groups = shared_groups.count();
        assert!(shared_groups > 0, "the threads share groups of steps: {shared_groups}");
        for isa in [cgnet::runtime::kernels::Isa::Scalar, cgnet::runtime::kernels::Isa::Avx2] {
            if isa.is_supported() {
                let execute = cgnet_codegen::back::native::execute;
                let out = execute(&model, isa, None, cgnet::runtime::kernels::Input::Floats(&input.data)).unwrap();
                for threads in 2..=8 {
                    let pool = cgnet::runtime::ThreadPool::new(threads).unwrap();
                    let parallel =
                        execute(&model, isa, Some(&pool), cgnet::runtime::kernels::Input::Floats(&input.data)).unwrap();
                    let same = parallel.logits.iter().zip(&out.logits).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{isa:?}: {threads} threads differ from 1");
                }
                expect(out.logits, &format!("{isa:?}"));
            }
        }
        for target in TARGETS {
            if let Err(e) = toolchain::Toolchain::find(target) {
                eprintln!("SKIPPED {}: {e}", target.name());
                continue;
            }
            let dir = tempfile::tempdir().unwrap();
            let exe = toolchain::build(&model, &Options { target, weights_blob: true }, dir.path()).unwrap();
            let single = toolchain::run(target, &exe, dir.path(), &input.data, 1, 0).unwrap();
            // 0: the pool's `auto`, one thread per core.
            for threads in [0, 2, 3, 4, 5, 6, 7, 8] {
                let out = toolchain::run(target, &exe, dir.path(), &input.data, threads, 0).unwrap();
                for (what, a, b) in [("logits", &out.logits, &single.logits), ("scores", &out.scores, &single.scores)] {
                    let same = a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{}: {what} on {threads} threads differ from 1", target.name());
                }
                assert_eq!(out.labels, single.labels, "{}: labels on {threads} threads", target.name());
            }
            expect(single.logits, target.name());
        }
    }
}

#[test]
fn the_emitted_cmake_project_builds_a_static_library() {
    if !tool_available("cmake") {
        eprintln!("SKIPPED the CMake build: cmake is not installed (.ci/run installs it)");
        return;
    }
    let model = tiny();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write_files(&model, &Options { target: CTarget::Scalar, weights_blob: false }, &src);
    let build = dir.path().join("build");
    let configure = Command::new("cmake").arg("-S").arg(&src).arg("-B").arg(&build).output().unwrap();
    assert!(configure.status.success(), "{}", String::from_utf8_lossy(&configure.stderr));
    let make = Command::new("cmake").arg("--build").arg(&build).output().unwrap();
    assert!(make.status.success(), "{}", String::from_utf8_lossy(&make.stderr));
    assert!(build.join("libtiny.a").exists(), "no libtiny.a in {}", build.display());
}

/// c-webgpu: the emitted header and host snapshotted; compiled with -Werror by gcc
/// and clang against wgpu-native's headers; built with the portable waits (no
/// `CGNET_WGPU_NATIVE`: events processed until the callbacks fire) and
/// compiled-in weights, run, and compared with the CPU program; the CMake
/// project builds. Skips what needs wgpu-native or an adapter without them.
#[test]
fn c_webgpu_host_snapshots_builds_portably_and_matches_the_cpu() {
    let model = tiny();
    let options = Options { target: CTarget::WebGpu, weights_blob: false };
    let files = c::emit(&model, &options).unwrap();
    let text = |name: &str| match &files.iter().find(|f| f.name == name).unwrap().contents {
        FileContents::Text(t) => t.clone(),
        FileContents::Binary(_) => panic!("{name} is binary"),
    };
    let source = text("tiny_gpu.c");
    insta::assert_snapshot!("c-webgpu_h", text("tiny_gpu.h"));
    // The host part (the kernels' WGSL is snapshotted by cgnet-codegen's wgsl tests).
    insta::assert_snapshot!("c-webgpu_host", &source[source.find("#define CG_WGSL_CHARS").unwrap()..]);
    for banned in ["malloc", "calloc", "realloc", "printf"] {
        assert!(!source.contains(banned), "the c-webgpu host contains `{banned}`");
    }
    let webgpu = match toolchain::WgpuNative::find() {
        Ok(w) => w,
        Err(e) => {
            assert!(!toolchain::WgpuNative::is_configured(), "{e}");
            eprintln!("SKIPPED compiling c-webgpu: {e}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    write_files(&model, &options, dir.path());
    let include = dir.path().join("include");
    std::fs::create_dir_all(include.join("webgpu")).unwrap();
    for header in &webgpu.headers {
        std::fs::copy(header, include.join("webgpu").join(header.file_name().unwrap())).unwrap();
    }
    for cc in ["gcc", "clang"] {
        if !tool_available(cc) {
            eprintln!("SKIPPED compiling c-webgpu with {cc}: not installed (.ci/run installs it)");
            continue;
        }
        let out = Command::new(cc)
            .current_dir(dir.path())
            .args(toolchain::STRICT_FLAGS)
            .arg("-isystem")
            .arg(&include)
            .args(["-c", "tiny_gpu.c", "tiny_weights.c"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{cc} c-webgpu: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The harness, linked with the portable waits.
    let harness = toolchain::harness_source(&model, CTarget::WebGpu, false);
    std::fs::write(dir.path().join("harness.c"), harness).unwrap();
    let out = Command::new("cc")
        .current_dir(dir.path())
        .args(toolchain::STRICT_FLAGS)
        .arg("-isystem")
        .arg(&include)
        .args(["tiny_gpu.c", "tiny_weights.c", "harness.c"])
        .arg(&webgpu.library)
        .arg(format!("-Wl,-rpath,{}", webgpu.library.parent().unwrap().display()))
        .args(["-o", "harness", "-lm"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let input = cgnet_codegen::testing::image_like_input(model.height, model.width, 3);
    match toolchain::run(CTarget::WebGpu, &dir.path().join("harness"), dir.path(), &input.data, 1, 3) {
        Err(e) if e.to_string().contains("no GPU adapter") && std::env::var_os("CGNET_REQUIRE_GPU").is_none() => {
            eprintln!("SKIPPED running c-webgpu: {e}");
        }
        result => {
            let out = result.unwrap();
            let cpu = cgnet_codegen::back::native::execute(
                &model,
                cgnet::runtime::kernels::Isa::Scalar,
                None,
                cgnet::runtime::kernels::Input::Floats(&input.data),
            )
            .unwrap();
            let scale = cpu.logits.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let worst = cpu.logits.iter().zip(&out.logits).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst <= 1e-4 * scale, "c-webgpu logits differ from the CPU's by {worst} (scale {scale})");
            assert!(out.median_ms.is_some(), "the harness timed its runs");
        }
    }
    if !tool_available("cmake") {
        eprintln!("SKIPPED the c-webgpu CMake build: cmake is not installed (.ci/run installs it)");
        return;
    }
    let build = dir.path().join("build");
    let configure = Command::new("cmake")
        .arg("-S")
        .arg(dir.path())
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCGNET_WEBGPU_INCLUDE_DIR={}", include.display()))
        .arg(format!("-DCGNET_WEBGPU_LIBRARY={}", webgpu.library.display()))
        .arg("-DCGNET_WGPU_NATIVE=ON")
        .output()
        .unwrap();
    assert!(configure.status.success(), "{}", String::from_utf8_lossy(&configure.stderr));
    let make = Command::new("cmake").arg("--build").arg(&build).output().unwrap();
    assert!(make.status.success(), "{}", String::from_utf8_lossy(&make.stdout));
    assert!(build.join("libtiny_gpu.a").exists(), "no libtiny_gpu.a in {}", build.display());
}
