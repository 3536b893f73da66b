//! Emitted C under the sanitizers and valgrind, and proof by linking that the
//! emitted code never allocates:
//! - every bundled golden case on c-avx2, and two on c-scalar (the same
//!   `kernels.c` over the portable vector header), built with AddressSanitizer +
//!   UBSan (serially and on the pthread pool), and with ThreadSanitizer on the
//!   pool at 2 and 4 threads, each run matching the golden;
//! - the default model on c-scalar under `valgrind --error-exitcode=1`;
//! - the emitted objects linked with `-Wl,--wrap=malloc,...` wrappers that abort.
//!
//! A missing tool (clang-less is fine: gcc has the sanitizers; valgrind) prints
//! `SKIPPED` with the reason; `.ci/run` installs them.

mod common;

use std::path::Path;
use std::process::Command;

use cgnet_codegen::back::c::{self, toolchain, CTarget, FileContents, Options};
use cgnet_codegen::back::compile;

// ASan + UBSan unoptimised: instrumenting the optimised kernels takes gcc about a
// minute per model at -O1, a second or two at -O0. TSan compiles quickly at -O1
// and runs far faster there.
const ASAN: &[&str] =
    &["-O0", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"];
const TSAN: &[&str] = &["-O1", "-g", "-fsanitize=thread"];

/// Emits `model` (weights in a blob) and the harness into `dir`; returns the C sources.
fn write_project(model: &cgnet_codegen::back::CompiledModel, target: CTarget, dir: &Path) -> Vec<String> {
    let mut sources = Vec::new();
    for f in c::emit(model, &Options { target, weights_blob: true }).unwrap() {
        match f.contents {
            FileContents::Text(t) => std::fs::write(dir.join(&f.name), t).unwrap(),
            FileContents::Binary(b) => std::fs::write(dir.join(&f.name), b).unwrap(),
        }
        if f.name.ends_with(".c") {
            sources.push(f.name);
        }
    }
    std::fs::write(dir.join("harness.c"), toolchain::harness_source(model, target, true)).unwrap();
    sources.push("harness.c".into());
    sources
}

fn check_golden(golden: &common::Golden, outputs: toolchain::HarnessOutputs, what: &str) -> f32 {
    let g = &golden.logits;
    let logits = cgnet_codegen::Tensor { c: g.c, h: g.h, w: g.w, data: outputs.logits };
    let labels: Vec<i32> = outputs.labels.iter().map(|l| i32::from(*l)).collect();
    golden.check(&logits, &labels, what)
}

fn golden_cases_under_the_sanitizers(target: CTarget, cases: &[&str]) {
    let toolchain = match toolchain::Toolchain::find(target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("SKIPPED {} under the sanitizers: {e}", target.name());
            return;
        }
    };
    for name in cases {
        let golden = common::load(name);
        let model = compile(&golden.spec, &golden.graph, "test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sources = write_project(&model, target, dir.path());
        let asan = toolchain.compile(dir.path(), &sources, "harness_asan", ASAN).unwrap();
        let tsan = toolchain.compile(dir.path(), &sources, "harness_tsan", TSAN).unwrap();
        let mut worst = 0.0f32;
        // A sanitizer report makes the run fail (no recovery; TSan exits 66).
        for (exe, threads, sanitizer) in
            [(&asan, 1, "asan"), (&asan, 2, "asan"), (&tsan, 2, "tsan"), (&tsan, 4, "tsan")]
        {
            let what = format!("{name} {} {sanitizer} {threads} threads", target.name());
            let out = toolchain::run(target, exe, dir.path(), &golden.input.data, threads, 0)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            worst = worst.max(check_golden(&golden, out, &what));
        }
        eprintln!("{name} {} under ASan+UBSan and TSan: worst logit error = {worst:.3} of tolerance", target.name());
    }
}

/// c-scalar runs `kernels.c` as c-avx2 does, over 8-float structs instead of
/// `__m256`; unoptimised, it is the slowest run of the suite. The two cases are
/// the one with odd sizes and no residual and the one with a single block per stage.
#[test]
fn c_scalar_runs_two_golden_cases_clean_under_the_sanitizers() {
    golden_cases_under_the_sanitizers(CTarget::Scalar, &["nores_m2n2_c3_33x65", "tiny_m1n1_c4_37x53"]);
}

/// The bundled cases (the full 360x480 frame would take minutes under TSan).
#[test]
fn c_avx2_runs_every_golden_case_clean_under_the_sanitizers() {
    golden_cases_under_the_sanitizers(CTarget::Avx2, &common::CASES);
}

fn tool_available(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn c_scalar_default_model_is_clean_under_valgrind() {
    if !tool_available("valgrind") {
        eprintln!("SKIPPED valgrind: not installed (Debian `valgrind`; .ci/run installs it)");
        return;
    }
    let target = CTarget::Scalar;
    let toolchain = toolchain::Toolchain::find(target).unwrap();
    let golden = common::load("camvid_official_crop_96x128");
    let model = compile(&golden.spec, &golden.graph, "test").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sources = write_project(&model, target, dir.path());
    let exe = toolchain.compile(dir.path(), &sources, "harness", &["-g"]).unwrap();
    let input: Vec<u8> = golden.input.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.path().join("input.bin"), input).unwrap();
    for threads in ["1", "2"] {
        let out = Command::new("valgrind")
            .args(["--error-exitcode=1", "--leak-check=full", "--errors-for-leak-kinds=definite", "-q"])
            .arg(&exe)
            .arg(dir.path())
            .args([threads, "0"])
            .output()
            .unwrap();
        assert!(out.status.success(), "valgrind, {threads} threads:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let outputs = toolchain::run(target, &exe, dir.path(), &golden.input.data, 1, 0).unwrap();
    check_golden(&golden, outputs, "c-scalar (valgrind build)");
}

/// The emitted objects are linked with `__wrap_malloc` & co. that abort, while
/// the harness calls the real allocator (`__real_malloc`): a model that
/// allocated would abort instead of running.
#[test]
fn emitted_objects_link_and_run_with_aborting_allocators() {
    let wrappers = r#"#include <stdio.h>
#include <stdlib.h>
static void cg_no_alloc(const char *what) {
    fprintf(stderr, "the emitted model called %s\n", what);
    abort();
}
void *__wrap_malloc(size_t n) { (void)n; cg_no_alloc("malloc"); return 0; }
void *__wrap_calloc(size_t n, size_t m) { (void)n; (void)m; cg_no_alloc("calloc"); return 0; }
void *__wrap_realloc(void *p, size_t n) { (void)p; (void)n; cg_no_alloc("realloc"); return 0; }
void __wrap_free(void *p) { (void)p; cg_no_alloc("free"); }
"#;
    // The harness's own allocations go to the real functions.
    let real = ["-Dmalloc=__real_malloc", "-Dcalloc=__real_calloc", "-Drealloc=__real_realloc", "-Dfree=__real_free"];
    let wrap = "-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free";
    for target in [CTarget::Scalar, CTarget::Avx2] {
        let toolchain = match toolchain::Toolchain::find(target) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("SKIPPED the allocator wrap on {}: {e}", target.name());
                continue;
            }
        };
        let golden = common::load("camvid_official_crop_96x128");
        let model = compile(&golden.spec, &golden.graph, "test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sources = write_project(&model, target, dir.path());
        std::fs::write(dir.path().join("wrappers.c"), wrappers).unwrap();
        let compile_one = |source: &str, extra: &[&str]| {
            let out = Command::new(&toolchain.compiler)
                .current_dir(dir.path())
                .args(toolchain::STRICT_FLAGS)
                .args(target.flags())
                .args(extra)
                .args(["-c", source])
                .output()
                .unwrap();
            assert!(out.status.success(), "{source}: {}", String::from_utf8_lossy(&out.stderr));
        };
        for source in &sources {
            let harness = source == "harness.c";
            compile_one(source, if harness { &real } else { &[] });
        }
        compile_one("wrappers.c", &[]);
        let objects: Vec<String> =
            sources.iter().chain([&"wrappers.c".to_string()]).map(|s| s.replace(".c", ".o")).collect();
        let out = Command::new(&toolchain.compiler)
            .current_dir(dir.path())
            .args(&objects)
            .args([wrap, "-o", "harness", "-lm", "-lpthread"])
            .output()
            .unwrap();
        assert!(out.status.success(), "link: {}", String::from_utf8_lossy(&out.stderr));
        // The wrap is live: an object that calls malloc aborts.
        let outputs = toolchain::run(target, &dir.path().join("harness"), dir.path(), &golden.input.data, 2, 0)
            .unwrap_or_else(|e| panic!("{}: {e}", target.name()));
        check_golden(&golden, outputs, &format!("{} (aborting allocators)", target.name()));
        std::fs::write(
            dir.path().join("calls.c"),
            "#include <stdlib.h>\nint main(void) { void *volatile p = malloc(8); free(p); return 0; }\n",
        )
        .unwrap();
        compile_one("calls.c", &[]);
        let out = Command::new(&toolchain.compiler)
            .current_dir(dir.path())
            .args(["calls.o", "wrappers.o", wrap, "-o", "calls"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let run = Command::new(dir.path().join("calls")).output().unwrap();
        assert!(!run.status.success(), "a malloc call is caught by the wrap");
    }
}
