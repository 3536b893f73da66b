//! `cgnetc` end to end: the happy path on a golden case, and every failure
//! as one `error: ...` line with a non-zero exit, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cgnet_codegen::back::c::toolchain::{default_cache_dir, WgpuNative};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

#[path = "cli/pictures.rs"]
mod pictures;

const CASE: &str = "tiny_m1n1_c4_37x53";

fn golden(ext: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/golden/{CASE}{ext}"))
}

/// Runs `cgnetc` with compiled C cached in a folder of this test process (not the user's cache).
fn cgnetc(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cgnetc"));
    // The user's wgpu-native, which the tests found in the user's cache folder, stays found.
    if let (false, Some(cache)) = (WgpuNative::is_configured(), default_cache_dir()) {
        command.env("CGNET_WGPU_NATIVE_DIR", cache.join("wgpu-native"));
    }
    command.env("CGNETC_CACHE_DIR", cache_dir()).args(args).output().unwrap()
}

fn cache_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts a clean failure and returns stderr.
fn fails(args: &[&str]) -> String {
    let out = cgnetc(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "expected failure for {args:?}");
    assert!(stderr.starts_with("error: "), "stderr does not start with `error: `:\n{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "panic:\n{stderr}");
    stderr
}

type Entry = (String, Dtype, Vec<usize>, Vec<u8>);

/// Rewrites the golden weights with `edit` applied to the list of tensors.
fn edited_weights(dir: &Path, edit: impl FnOnce(&mut Vec<Entry>)) -> PathBuf {
    let bytes = std::fs::read(golden(".safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<Entry> =
        st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut tensors);
    let views: Vec<_> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    let out = dir.join("edited.safetensors");
    std::fs::write(&out, safetensors::serialize(views, &None).unwrap()).unwrap();
    out
}

fn build_args<'a>(model: &'a str, weights: &'a str, target: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["build", "--model", model, "--weights", weights, "--target", target, "--out", out]
}

fn run_args<'a>(weights: &'a str, input: &'a str, out: &'a str, model: &'a str) -> Vec<&'a str> {
    vec!["run", "--model", model, "--weights", weights, "--input", input, "--out", out]
}

#[test]
fn run_writes_the_three_outputs_matching_the_reference() {
    for extra in [
        &["--target", "interp"][..],
        &["--target", "interp-planned"],
        &["--target", "interp-planned", "--stop-after-pass", "3"],
    ] {
        run_and_compare(extra);
    }
}

fn run_and_compare(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let (model, weights, input) = (golden(".json"), golden(".safetensors"), golden(".io.safetensors"));
    let o = cgnetc(&[&run_args(path(&weights), path(&input), path(&out), path(&model))[..], extra].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ours = std::fs::read(&out).unwrap();
    let ours = SafeTensors::deserialize(&ours).unwrap();
    let reference = std::fs::read(&input).unwrap();
    let reference = SafeTensors::deserialize(&reference).unwrap();
    for name in ["logits", "scores", "labels"] {
        let (a, b) = (ours.tensor(name).unwrap(), reference.tensor(name).unwrap());
        assert_eq!(a.shape(), b.shape(), "{name}");
        assert_eq!(a.dtype(), if name == "labels" { Dtype::I32 } else { Dtype::F32 }, "{name}");
    }
    let floats = |v: TensorView<'_>| {
        v.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>()
    };
    let (a, b) = (floats(ours.tensor("logits").unwrap()), floats(reference.tensor("logits").unwrap()));
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(worst <= 1e-4 * scale, "max logit error {worst}");
}

#[test]
fn inspect_reports_the_default_model() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("m3n21.json");
    std::fs::write(&spec, r#"{"classes": 19, "stage2_blocks": 3, "stage3_blocks": 21, "residual": "global", "input_injection": true, "activation": "prelu", "global_context": true, "height": 512, "width": 1024}"#).unwrap();
    let o = cgnetc(&["inspect", "--model", path(&spec), "--json"]);
    assert!(o.status.success());
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["parameters"], 496_306);
    assert_eq!(report["macs"], 6_762_312_704u64);
    let arena = report["arena_bytes"].as_u64().unwrap();
    let bound = report["arena_lower_bound_bytes"].as_u64().unwrap();
    // Streamed regions and split convolutions: the memory target of the design (< 25 MB).
    assert!(arena < 25_000_000 && arena as f64 <= 1.1 * bound as f64, "arena {arena}, bound {bound}");
    let unstreamed = report["plan"]["unstreamed_lower_bound_bytes"].as_u64().unwrap();
    assert!(unstreamed > bound, "streaming lowered the bound: {unstreamed} -> {bound}");
    assert!(report["unshared_bytes"].as_u64().unwrap() > 200_000_000);
    let fusions: Vec<&str> =
        report["fusions"].as_array().unwrap().iter().map(|f| f["pass"].as_str().unwrap()).collect();
    assert_eq!(
        fusions,
        [
            "common-subexpressions",
            "depthwise-pair",
            "fold-batch-norm",
            "fuse-activation",
            "eliminate-concat",
            "global-context",
            "split-concat-conv",
            "head"
        ]
    );
    let ir = String::from_utf8(cgnetc(&["inspect", "--model", path(&spec), "--ir", "fused"]).stdout).unwrap();
    assert!(ir.contains("= depthwise_pair[d1 d4]") && ir.contains("global_context"), "{ir}");
    // The arena inspect reports is the one the backends emit.
    let dir = tempfile::tempdir().unwrap();
    let o = cgnetc(&["inspect", path(&repo_root().join("models/camvid.cgnet")), "--json"]);
    let camvid: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let o = cgnetc(&[
        "build",
        path(&repo_root().join("models/camvid.cgnet")),
        "--target",
        "c-scalar",
        "--out",
        path(dir.path()),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let header = std::fs::read_to_string(dir.path().join("camvid.h")).unwrap();
    let emitted = format!("#define CAMVID_ARENA_BYTES {}u", camvid["arena_bytes"]);
    assert!(header.contains(&emitted), "inspect says {emitted}; the header:\n{header}");
    let text = String::from_utf8(cgnetc(&["inspect", "--model", path(&spec)]).stdout).unwrap();
    assert!(text.contains("parameters: 496306") && text.contains("6.762 GMAC"), "{text}");
    assert!(text.contains("level3.19.F_glo.fc.0"), "per-layer lines are listed");
    // The groups of steps the CPU backends run chunk by chunk.
    assert!(text.contains("kernel steps: 131, run as 87 groups"), "{text}");
    assert!(
        text.contains("  19 x Elementwise + Conv 1x1/1\n") && text.contains("  20 x DepthwisePair + ChannelSums\n")
    );
    // Streamed regions: their steps run band by band, and the report says where.
    assert!(text.contains("streamed regions (steps computed band by band): 1..=6, 7..=8, 12..=13, 15..=16"), "{text}");
    assert!(text.contains("(ring of 32 rows)"), "{text}");
}

#[test]
fn inspect_draws_the_plan_and_the_graph_and_the_committed_plan_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, dot) = (dir.path().join("plan.svg"), dir.path().join("graph.dot"));
    let model = repo_root().join("models/camvid.cgnet");
    let o = cgnetc(&["inspect", path(&model), "--plan-svg", path(&svg), "--graph-dot", path(&dot)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let drawn = std::fs::read_to_string(&svg).unwrap();
    let committed = std::fs::read_to_string(repo_root().join("docs/camvid_plan.svg")).unwrap();
    assert!(
        drawn == committed,
        "docs/camvid_plan.svg is stale: cgnetc inspect models/camvid.cgnet --plan-svg docs/camvid_plan.svg"
    );
    assert!(drawn.contains("CamVid 360x480: 85 buffers") && drawn.contains("lower bound 7.7 MB"), "{drawn}");
    // The blocks' results stored in place of an input say so.
    assert!(drawn.contains("stored in place of %"), "{drawn}");
    let graph = std::fs::read_to_string(&dot).unwrap();
    assert!(graph.starts_with("digraph \"CamVid 360x480\" {") && graph.contains("depthwise_pair"), "{graph}");
    // An unwritable destination is an error naming it, and leaves nothing behind.
    let missing = dir.path().join("no/such/folder/plan.svg");
    let err = fails(&["inspect", path(&model), "--plan-svg", path(&missing)]);
    assert!(err.contains("cannot write") && err.contains("plan.svg"), "{err}");
    assert!(!missing.exists());
}

#[test]
fn bad_weight_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (model, input) = (golden(".json"), golden(".io.safetensors"));
    let out = dir.path().join("out.safetensors");
    let run_with = |w: &Path| fails(&run_args(path(w), path(&input), path(&out), path(&model)));

    let bytes = std::fs::read(golden(".safetensors")).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(run_with(&truncated).contains("is not a valid safetensors file"));

    let wrong_shape = edited_weights(dir.path(), |t| {
        let e = t.iter_mut().find(|e| e.0 == "level1_0.act.weight").unwrap();
        e.2 = vec![16, 2];
    });
    let err = run_with(&wrong_shape);
    assert!(err.contains("wrong shape for `level1_0.act.weight`: expected [32], found [16, 2]"), "{err}");

    let missing = edited_weights(dir.path(), |t| t.retain(|e| e.0 != "classifier.0.conv.weight"));
    assert!(run_with(&missing).contains("missing key `classifier.0.conv.weight`"));

    let f64_file = edited_weights(dir.path(), |t| {
        let e = t.iter_mut().find(|e| e.0 == "b1.bn.weight").unwrap();
        e.1 = Dtype::F64;
        e.3 =
            e.3.chunks_exact(4)
                .flat_map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes())
                .collect();
    });
    assert!(run_with(&f64_file).contains("unsupported dtype F64 for `b1.bn.weight`"));

    let several = edited_weights(dir.path(), |t| {
        t.retain(|e| e.0 != "b1.bn.bias");
        t.push(("extra.weight".into(), Dtype::F32, vec![1], vec![0; 4]));
    });
    let err = run_with(&several);
    assert!(
        err.contains("(2 problems)")
            && err.contains("\n  missing key `b1.bn.bias`")
            && err.contains("\n  unexpected key `extra.weight`"),
        "{err}"
    );
    assert!(!out.exists(), "no output file after a failure");

    assert!(run_with(&dir.path().join("absent.safetensors")).contains("cannot read weights file"));
}

#[test]
fn bad_inputs_and_specs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (model, weights, input) = (golden(".json"), golden(".safetensors"), golden(".io.safetensors"));
    let out = dir.path().join("out.safetensors");

    let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/nores_m2n2_c3_33x65.io.safetensors");
    let err = fails(&run_args(path(&weights), path(&other), path(&out), path(&model)));
    assert!(err.contains("has shape [1, 3, 33, 65]; the model takes [1, 3, 37, 53]"), "{err}");

    let err = fails(&run_args(path(&weights), path(&weights), path(&out), path(&model)));
    assert!(err.contains("no tensor named `input`"), "{err}");

    let bad_spec = dir.path().join("bad.json");
    std::fs::write(&bad_spec, r#"{"classes": 0, "stage2_blocks": 3, "stage3_blocks": 21, "residual": "global", "activation": "prelu", "height": 64, "width": 64, "stage3": {"channels": 128, "dilation": 4, "reduction": 7}}"#).unwrap();
    let err = fails(&["inspect", "--model", path(&bad_spec)]);
    assert!(
        err.contains("`classes` must be at least 1") && err.contains("`stage3.reduction` (7) must divide"),
        "{err}"
    );

    std::fs::write(&bad_spec, "{ not json").unwrap();
    assert!(fails(&["inspect", "--model", path(&bad_spec)]).contains("cannot read model spec"));

    let base = run_args(path(&weights), path(&input), path(&out), path(&model));
    let err = fails(&[&base[..], &["--target", "interp-planned", "--stop-after-pass", "9"]].concat());
    assert!(err.contains("--stop-after-pass takes 0..=8"), "{err}");
    let err = fails(&[&base[..], &["--target", "tpu"]].concat());
    assert!(err.contains("invalid value 'tpu'"), "{err}");
    for target in ["interp", "interp-planned", "gpu", "c-webgpu"] {
        let err = fails(&[&base[..], &["--target", target, "--threads", "2"]].concat());
        assert!(err.contains(&format!("--threads does not apply to --target {target}")), "{err}");
    }
    let spec = |extra: &str| {
        format!(
            r#"{{"classes": 4, "stage2_blocks": 3, "stage3_blocks": 21, "residual": "global", "activation": "prelu", "height": 64, "width": 64{extra}}}"#
        )
    };
    std::fs::write(&bad_spec, spec(r#", "stage3_blocks": 100000"#).replacen(r#""stage3_blocks": 21, "#, "", 1))
        .unwrap();
    assert!(fails(&["inspect", "--model", path(&bad_spec)]).contains("`stage3_blocks` is 100000; at most 256"));
    std::fs::write(&bad_spec, spec(r#", "stage2": {"channels": 1000000, "dilation": 99999, "reduction": 8}"#)).unwrap();
    let err = fails(&["inspect", "--model", path(&bad_spec)]);
    assert!(
        err.contains("`stage2.channels` is 1000000; at most 4096") && err.contains("`stage2.dilation` is 99999"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn build_writes_a_complete_c_project_with_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sdk");
    let (model, weights) = (golden(".json"), golden(".safetensors"));
    let o =
        cgnetc(&[&build_args(path(&model), path(&weights), "c-neon", path(&out))[..], &["--name", "Tiny"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(std::fs::read(&weights).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
    };
    for name in ["tiny.h", "tiny.c", "tiny_weights.c", "CMakeLists.txt"] {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(text.contains(&format!("GENERATED by cgnetc {}", env!("CARGO_PKG_VERSION"))), "{name}");
        assert!(text.contains(&sha) && text.contains("\"classes\":4"), "{name} names the weights and the spec");
    }
    let h = std::fs::read_to_string(out.join("tiny.h")).unwrap();
    for api in [
        "size_t tiny_arena_bytes(void);",
        "int tiny_run(const float *input, float *logits, void *arena);",
        "#define TINY_ARENA_BYTES",
    ] {
        assert!(h.contains(api), "{api}");
    }
    assert!(std::fs::read_to_string(out.join("tiny.c")).unwrap().contains("#include <arm_neon.h>"));

    let blob = dir.path().join("blob");
    let o =
        cgnetc(&[&build_args(path(&model), path(&weights), "c-scalar", path(&blob))[..], &["--weights-blob"]].concat());
    assert!(o.status.success());
    let bytes = std::fs::metadata(blob.join("cgnet.weights")).unwrap().len();
    assert!(std::fs::read_to_string(blob.join("cgnet.h"))
        .unwrap()
        .contains(&format!("#define CGNET_WEIGHTS_BYTES {bytes}u")));
    assert!(!blob.join("cgnet_weights.c").exists());
}

#[test]
fn build_and_c_targets_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sdk");
    let (model, weights, input) = (golden(".json"), golden(".safetensors"), golden(".io.safetensors"));
    let err = fails(&build_args(path(&model), path(&weights), "rust-avx2", path(&out)));
    assert!(
        err.contains("invalid value 'rust-avx2'")
            && err.contains("[possible values: c-scalar, c-avx2, c-avx512, c-neon, c-webgpu, rust]"),
        "{err}"
    );
    let err = fails(&[&build_args(path(&model), path(&weights), "c-avx2", path(&out))[..], &["--name", "9x"]].concat());
    assert!(err.contains("identifier"), "{err}");
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(), "nothing written on failure");

    // A wgpu-native folder that lacks the library is named in the error.
    let o = Command::new(env!("CARGO_BIN_EXE_cgnetc"))
        .env("CGNET_WGPU_NATIVE_DIR", dir.path())
        .args(run_args(path(&weights), path(&input), path(&dir.path().join("o.safetensors")), path(&model)))
        .args(["--target", "c-webgpu"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.starts_with(&format!(
                "error: no webgpu.h implementation for c-webgpu: the folder {} (CGNET_WGPU_NATIVE_DIR) lacks",
                dir.path().display()
            )),
        "{err}"
    );

    let o = Command::new(env!("CARGO_BIN_EXE_cgnetc"))
        .env("CC", "/nonexistent/cc")
        .args(run_args(path(&weights), path(&input), path(&dir.path().join("o.safetensors")), path(&model)))
        .args(["--target", "c-scalar"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.starts_with("error: `/nonexistent/cc` was not found; install the Debian package(s) `gcc`"),
        "{err}"
    );
}

#[test]
fn cgnet_files_describe_models_too() {
    let camvid = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/camvid.cgnet");
    let o = cgnetc(&["inspect", "--model", path(&camvid), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["parameters"], 494_258);
    assert_eq!(report["model"], "CamVid");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.cgnet");
    std::fs::write(&bad, "model M {\n    input: 3 x 64 x 64,\n    classes: 4,\n    residual: sideways,\n}\n").unwrap();
    let err = fails(&["inspect", "--model", path(&bad)]);
    assert!(err.contains("bad.cgnet:4:15: unknown residual `sideways`"), "{err}");

    // Compact dimensions that are not numbers: an error at the token, not a panic.
    for (dims, found) in [("3xHxW", "`H`"), ("3x64x", "nothing")] {
        std::fs::write(&bad, format!("model M {{\n    input: {dims},\n    classes: 4,\n}}\n")).unwrap();
        let err = fails(&["inspect", path(&bad)]);
        assert!(
            err.contains(&format!("bad.cgnet:2:12: `{dims}`: every dimension must be a number (found {found})")),
            "{err}"
        );
    }
}

#[test]
fn non_finite_weights_are_errors_naming_the_tensor_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sdk");
    for (bits, shown) in [(f32::NAN.to_bits(), "NaN"), (f32::INFINITY.to_bits(), "inf")] {
        let bad = edited_weights(dir.path(), |t| {
            let e = t.iter_mut().find(|e| e.0 == "level2_0.conv1x1.conv.weight").unwrap();
            e.3[4 * 5..4 * 6].copy_from_slice(&bits.to_le_bytes());
        });
        let err = fails(&build_args(path(&golden(".json")), path(&bad), "c-scalar", path(&out)));
        assert!(
            err.contains(&format!(
                "`level2_0.conv1x1.conv.weight` holds {shown} at flat index 5; weights must be finite"
            )),
            "{err}"
        );
        assert!(!out.exists(), "nothing written");
    }
}

/// The README's first command, as written, from the repository root (only the
/// output folder moved into a temporary one); the emitted README's plain compiler
/// line then builds the result.
#[test]
fn the_readme_first_command_works_and_its_output_builds_as_its_notes_say() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let blocks: Vec<&str> = readme.split("```").skip(1).step_by(2).collect();
    let first = blocks[0].lines().nth(1).unwrap();
    let cli_args = first.split_once("--bin cgnetc -- ").expect("the first command runs cgnetc").1;
    let mut args: Vec<String> = cli_args.split_whitespace().map(String::from).collect();
    assert_eq!(args[..2], ["build".to_string(), "models/camvid.cgnet".to_string()], "{first}");
    let dir = tempfile::tempdir().unwrap();
    let out_at = args.iter().position(|a| a == "--out").unwrap() + 1;
    args[out_at] = dir.path().join("camvid").to_str().unwrap().to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_cgnetc")).current_dir(repo_root()).args(&args).output().unwrap();
    assert!(o.status.success(), "{first}: {}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("camvid");
    // The second block is the test command, the one .ci/run runs.
    let test_command = blocks[1].lines().nth(1).unwrap();
    assert_eq!(test_command, "INSTA_UPDATE=no cargo test --workspace --locked");
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == test_command), ".ci/run runs the README's test command");

    let notes = std::fs::read_to_string(out.join("README.md")).unwrap();
    let compile = notes.lines().find(|l| l.starts_with("cc ")).expect("a plain cc line");
    assert!(compile.contains("-mavx2 -mfma"), "{compile}");
    assert!(
        notes.contains("cgnet_pthread_pool.h")
            && notes.contains("add_subdirectory(path/to/camvid ${CMAKE_BINARY_DIR}/camvid)")
    );
    assert!(notes.contains("minus the training set's per-channel mean") && notes.contains("105.65775"));
    if Command::new("cc").arg("--version").output().is_err() {
        eprintln!("SKIPPED compiling the emitted C: no `cc`");
        return;
    }
    let words: Vec<&str> = compile.split_whitespace().collect();
    let built = Command::new(words[0]).current_dir(&out).args(&words[1..]).output().unwrap();
    assert!(built.status.success(), "{compile}: {}", String::from_utf8_lossy(&built.stderr));
    // Without the flags, the guard names them.
    let plain = Command::new("cc").current_dir(&out).args(["-std=c99", "-c", "camvid.c"]).output().unwrap();
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(!plain.status.success() && err.contains("compile it with -mavx2 -mfma"), "{err}");
}

#[test]
fn weights_default_to_the_file_the_description_names() {
    let dir = tempfile::tempdir().unwrap();
    let camvid = repo_root().join("models/camvid.cgnet");
    let o = cgnetc(&["build", path(&camvid), "--target", "c-scalar", "--out", path(&dir.path().join("a"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sha: String = {
        use sha2::Digest;
        let bundled = std::fs::read(repo_root().join("weights/cgnet_camvid.safetensors")).unwrap();
        sha2::Sha256::digest(bundled).iter().map(|b| format!("{b:02x}")).collect()
    };
    assert!(std::fs::read_to_string(dir.path().join("a/camvid.h")).unwrap().contains(&sha));

    // An explicit --weights overrides (here: a file of another topology, so the error proves it was read).
    let err = fails(&[
        "build",
        path(&camvid),
        "--weights",
        path(&golden(".safetensors")),
        "--target",
        "c-scalar",
        "--out",
        path(&dir.path().join("b")),
    ]);
    assert!(err.contains("does not match") || err.contains("missing key") || err.contains("wrong shape"), "{err}");

    // A description that names no weights, without --weights: a clear error.
    let err = fails(&["build", path(&golden(".json")), "--target", "c-scalar", "--out", path(&dir.path().join("c"))]);
    assert!(err.contains("no weights") && err.contains("pass --weights"), "{err}");

    // Relative to the description file, not the working directory.
    let moved = dir.path().join("models");
    std::fs::create_dir(&moved).unwrap();
    std::fs::copy(&camvid, moved.join("camvid.cgnet")).unwrap();
    let err = fails(&[
        "build",
        path(&moved.join("camvid.cgnet")),
        "--target",
        "c-scalar",
        "--out",
        path(&dir.path().join("d")),
    ]);
    let expected = moved.join("../weights/cgnet_camvid.safetensors");
    assert!(err.contains("cannot read weights file") && err.contains(path(&expected)), "{err}");
}

#[test]
fn help_lists_only_what_each_subcommand_accepts() {
    let help = |args: &[&str]| String::from_utf8(cgnetc(args).stdout).unwrap();
    let top = help(&["--help"]);
    assert!(top.contains("standalone C for mobile and embedded") && !top.contains("interpreter"), "{top}");
    let build = help(&["build", "--help"]);
    for t in ["c-scalar", "c-avx2", "c-neon", "c-webgpu"] {
        assert!(build.contains(t), "{build}");
    }
    for t in ["interp", "rust-", "- gpu:"] {
        assert!(!build.contains(t), "`build --help` lists {t}:\n{build}");
    }
    // The wgpu shim runs and benchmarks; the webgpu.h host is also emitted as source.
    for text in [&help(&["run", "--help"]), &help(&["bench", "--help"])] {
        assert!(text.contains("- gpu:") && text.contains("c-webgpu") && text.contains("WGSL"), "{text}");
    }
    let run = help(&["run", "--help"]);
    let bench = help(&["bench", "--help"]);
    assert!(run.contains("interp-planned") && run.contains("rust-avx2") && run.contains("c-neon"));
    assert!(bench.contains("rust-avx2") && !bench.contains("interp"));
    // The AVX-512 variants, wherever the compiler runs (the CPU is checked when one runs).
    assert!(build.contains("c-avx512") && run.contains("rust-avx512") && bench.contains("c-avx512"), "{bench}");
    for text in [&top, &build, &run, &bench, &help(&["inspect", "--help"])] {
        // Every option has a description: no option line is followed directly by another option or a blank.
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("--") && !line.contains("  ") {
                let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
                assert!(!next.is_empty() && !next.starts_with("--"), "undescribed option `{line}`:\n{text}");
            }
        }
    }
    let version = String::from_utf8(cgnetc(&["--version"]).stdout).unwrap();
    assert_eq!(version.trim(), format!("cgnetc {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn run_prints_a_summary_and_c_builds_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("out.safetensors");
    let (model, weights, input) = (golden(".json"), golden(".safetensors"), golden(".io.safetensors"));
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_cgnetc"))
            .env("CGNETC_CACHE_DIR", &cache)
            .args(run_args(path(&weights), path(&input), path(&out), path(&model)))
            .args(["--target", "c-scalar"])
            .output()
            .unwrap()
    };
    if Command::new("cc").arg("--version").output().is_err() {
        eprintln!("SKIPPED the C cache: no `cc`");
        return;
    }
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let stdout = String::from_utf8(first.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!(
            "wrote {}: logits [1, 4, 5, 7], scores [1, 4, 37, 53], labels [1, 37, 53]; c-scalar on 1 thread(s) took ",
            out.display()
        )),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1);
    assert!(String::from_utf8_lossy(&first.stderr).contains("compiled"), "the first run says it compiles");
    let builds = || {
        std::fs::read_dir(&cache)
            .unwrap()
            .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
            .count()
    };
    assert_eq!(builds(), 1);
    let second = run();
    assert!(second.status.success());
    assert!(second.stderr.is_empty(), "the second run compiles nothing: {}", String::from_utf8_lossy(&second.stderr));
    assert_eq!(builds(), 1);
    // Other weights are another program.
    let other = edited_weights(dir.path(), |t| {
        let e = t.iter_mut().find(|e| e.0 == "classifier.0.conv.weight").unwrap();
        e.3[0] ^= 1;
    });
    let third = Command::new(env!("CARGO_BIN_EXE_cgnetc"))
        .env("CGNETC_CACHE_DIR", &cache)
        .args(run_args(path(&other), path(&input), path(&out), path(&model)))
        .args(["--target", "c-scalar"])
        .output()
        .unwrap();
    assert!(third.status.success());
    assert_eq!(builds(), 2);
}

/// `cgnetc build --target rust`: the module compiles in a fresh crate that
/// depends on cgnet-runtime alone, matches the golden case with the weights
/// compiled in, and gives the same logits with the weights loaded at run time
/// through the packing recipe.
#[test]
fn build_target_rust_compiles_standalone_and_matches_the_golden() {
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("standalone");
    let src = krate.join("src");
    let o = cgnetc(
        &[
            &build_args(path(&golden(".json")), path(&golden(".safetensors")), "rust", path(&src))[..],
            &["--name", "tiny"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let module = std::fs::read_to_string(src.join("tiny.rs")).unwrap();
    assert!(module.contains("pub struct Tiny") && !module.contains("cgnet::") && !module.contains("cgnet_codegen"));
    let runtime = repo_root().join("cgnet-runtime");
    std::fs::write(
        krate.join("Cargo.toml"),
        format!("[package]\nname = \"standalone\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ncgnet-runtime = {{ path = {:?} }}\n\n[workspace]\n", runtime.display().to_string()),
    )
    .unwrap();
    std::fs::copy(repo_root().join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    std::fs::write(
        src.join("main.rs"),
        r#"mod tiny;
use tiny::Tiny;

fn floats(path: &str) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let input = floats(&args[1]);
    let mut arena = Tiny::new_arena();
    let mut logits = vec![0.0f32; Tiny::LOGITS_SHAPE.iter().product()];
    let mut labels = vec![0u8; Tiny::LABELS_LEN];
    let model = Tiny::new();
    model.run(&input, arena.as_f32_mut(), &mut logits).unwrap();
    model.segment(&input, arena.as_f32_mut(), &mut labels).unwrap();
    let loaded = Tiny::from_path(&args[4]).unwrap();
    let mut again = vec![0.0f32; logits.len()];
    loaded.run(&input, arena.as_f32_mut(), &mut again).unwrap();
    assert!(logits.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()), "run-time weights differ");
    std::fs::write(&args[2], logits.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    std::fs::write(&args[3], labels).unwrap();
}
"#,
    )
    .unwrap();
    let io = std::fs::read(golden(".io.safetensors")).unwrap();
    let io = SafeTensors::deserialize(&io).unwrap();
    let floats = |v: TensorView<'_>| -> Vec<f32> {
        v.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    };
    let input = floats(io.tensor("input").unwrap());
    std::fs::write(dir.path().join("input.bin"), input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
        .unwrap();
    // A target folder that outlives the test, so reruns do not rebuild cgnet-runtime.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().join("standalone-crate");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = Command::new(cargo)
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .args(["run", "--offline", "--quiet", "--"])
        .arg(dir.path().join("input.bin"))
        .arg(dir.path().join("logits.bin"))
        .arg(dir.path().join("labels.bin"))
        .arg(golden(".safetensors"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let ours: Vec<f32> = std::fs::read(dir.path().join("logits.bin"))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let reference = floats(io.tensor("logits").unwrap());
    let scale = reference.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert_eq!(ours.len(), reference.len());
    assert!(worst <= 1e-4 * scale, "max logit error {worst}");
    // Labels: equal wherever the reference's top two scores are more than 1e-4 apart.
    let labels = std::fs::read(dir.path().join("labels.bin")).unwrap();
    let scores = floats(io.tensor("scores").unwrap());
    let expected: Vec<i32> = io
        .tensor("labels")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let pixels = labels.len();
    let classes = scores.len() / pixels;
    for p in 0..pixels {
        let mut col: Vec<f32> = (0..classes).map(|k| scores[k * pixels + p]).collect();
        col.sort_by(|a, b| b.total_cmp(a));
        if col[0] - col[1] > 1e-4 {
            assert_eq!(i32::from(labels[p]), expected[p], "label at pixel {p}");
        }
    }
}

#[test]
fn bench_sweeps_thread_counts_under_load() {
    let model = repo_root().join("bench/cityscapes_64x128.cgnet");
    let o = cgnetc(&["bench", path(&model), "--threads", "1,auto,3", "--busy-cores", "1", "--iters", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let cores = std::thread::available_parallelism().unwrap().get();
    for (line, threads) in lines.iter().zip([1, cores, 3]) {
        assert!(line.contains(&format!("threads {threads}, 1 busy core: median")), "{line}");
        assert!(line.contains("x the 1-thread time"), "{line}");
    }
    for bad in ["two", "1,,2", "1.5"] {
        let stderr = fails(&["bench", path(&model), "--threads", bad]);
        assert!(stderr.contains("thread count") || stderr.contains("--threads"), "{bad}: {stderr}");
    }
}

#[test]
fn bench_profile_times_every_kind_of_step_against_the_fma_peak() {
    let model = repo_root().join("bench/cityscapes_64x128.cgnet");
    // The kinds of CGNet's steps, or of its groups of steps, each with its count.
    let grouped = ["Conv 3x3/2", "Elementwise + Conv 1x1/1", "DepthwisePair + ChannelSums", "AvgPool", "Squeeze"];
    let alone = ["Conv 3x3/2", "Conv 1x1/1", "DepthwisePair", "AvgPool", "ChannelSums", "Squeeze", "Elementwise"];
    for (extra, kinds) in [(None, &grouped[..]), (Some("--ungrouped"), &alone[..])] {
        let args = ["bench", path(&model), "--target", "rust-scalar", "--iters", "2", "--profile"];
        let o = cgnetc(&args.into_iter().chain(extra).collect::<Vec<_>>());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let stdout = String::from_utf8_lossy(&o.stdout);
        for kind in kinds {
            // The kind, then its count (not a longer kind that starts with it).
            let line = stdout
                .lines()
                .find(|l| {
                    let rest = l.trim_start().strip_prefix(kind).unwrap_or("");
                    rest.starts_with(' ') && rest.trim_start().starts_with(|c: char| c.is_ascii_digit())
                })
                .unwrap_or_else(|| panic!("{kind}: {stdout}"));
            // Kinds that do arithmetic have a rate.
            let rate = line.split_whitespace().last().unwrap();
            assert_eq!(rate == "-", !(kind.contains("Conv") || kind.contains("DepthwisePair")), "{line}");
        }
        let shares: f64 = stdout
            .lines()
            .filter_map(|l| l.split_whitespace().find(|w| w.ends_with('%'))?.trim_end_matches('%').parse::<f64>().ok())
            .sum();
        assert!((shares - 100.0).abs() < 1.0, "the shares add up to 100 %: {shares}\n{stdout}");
        let peak = stdout.lines().find(|l| l.starts_with("FMA peak of the Scalar kernels")).expect("the peak line");
        assert!(peak.contains("GFLOP/s") && peak.contains("% of 1 x that"), "{peak}");
    }
    // Every group once, in program order: the step ranges tile the program, then the tail.
    let o =
        cgnetc(&["bench", path(&model), "--target", "rust-scalar", "--iters", "2", "--profile", "--profile-groups"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let listed: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("every group of steps in program order"))
        .skip(2)
        .take_while(|l| l.starts_with("  S") || l.starts_with("  tail"))
        .collect();
    let mut next = 0;
    for line in &listed[..listed.len() - 1] {
        let steps = line.split_whitespace().next().unwrap();
        let (first, last) = steps.split_once("..").unwrap_or((steps, steps));
        let index = |s: &str| s.trim_start_matches('S').parse::<usize>().unwrap();
        assert_eq!(index(first), next, "{line}\n{stdout}");
        assert!(index(last) >= index(first), "{line}");
        next = index(last) + 1;
        assert!(line.split_whitespace().nth(1).unwrap().parse::<f64>().is_ok(), "{line}");
    }
    assert!(listed.len() > 10 && listed.last().unwrap().trim_start().starts_with("tail"), "{stdout}");
    assert!(listed.iter().any(|l| l.contains("Elementwise + Conv 1x1/1")), "{stdout}");
    let stderr = fails(&["bench", path(&model), "--target", "rust-scalar", "--profile-groups"]);
    assert!(stderr.contains("--profile"), "{stderr}");
    let stderr = fails(&["bench", path(&model), "--target", "c-scalar", "--profile"]);
    assert!(stderr.contains("--profile applies to the rust-* targets"), "{stderr}");
    for gpu in ["gpu", "c-webgpu"] {
        let stderr = fails(&["bench", path(&model), "--target", gpu, "--ungrouped"]);
        assert!(stderr.contains("--ungrouped applies to the CPU targets"), "{gpu}: {stderr}");
    }
}

#[cfg(feature = "gpu")]
#[test]
fn run_and_bench_on_the_gpu_target() {
    let (model, weights) = (golden(".json"), golden(".safetensors"));
    let base = ["bench", path(&model), "--weights", path(&weights), "--target", "gpu"];
    let bench = |extra: &[&'static str]| -> Vec<&str> { base.iter().chain(extra).copied().collect() };
    if let Err(e) = cgnet_runtime::gpu::Gpu::new(0) {
        assert!(std::env::var_os("CGNET_REQUIRE_GPU").is_none(), "{e}");
        eprintln!("SKIPPED cgnetc --target gpu: {e}");
        let stderr = fails(&bench(&[]));
        assert!(stderr.contains("no GPU adapter"), "{stderr}");
        return;
    }
    run_and_compare(&["--target", "gpu"]);
    let o = cgnetc(&bench(&["--iters", "2"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("target gpu threads 1: median"));
    let stderr = fails(&bench(&["--threads", "2"]));
    assert!(stderr.contains("--threads does not apply to --target gpu"), "{stderr}");
}

/// `build --target c-webgpu` writes the GPU project; `run` and `bench` on it
/// build and run the host with wgpu-native (when there is one).
#[test]
fn build_run_and_bench_the_c_webgpu_host() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gpu-sdk");
    let (model, weights) = (golden(".json"), golden(".safetensors"));
    let o = cgnetc(&build_args(path(&model), path(&weights), "c-webgpu", path(&out)));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["cgnet_gpu.h", "cgnet_gpu.c", "cgnet_weights.c", "CMakeLists.txt", "README.md"] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    assert!(!out.join("cgnet.c").exists(), "no CPU program for c-webgpu");
    let h = std::fs::read_to_string(out.join("cgnet_gpu.h")).unwrap();
    for api in [
        "#include <webgpu/webgpu.h>",
        "int cgnet_gpu_init(cgnet_gpu *gpu, WGPUInstance instance, WGPUDevice device);",
        "int cgnet_gpu_segment(cgnet_gpu *gpu, const float *input, uint8_t *labels);",
        "void cgnet_gpu_destroy(cgnet_gpu *gpu);",
    ] {
        assert!(h.contains(api), "{api}");
    }
    let blob = dir.path().join("gpu-blob");
    let o =
        cgnetc(&[&build_args(path(&model), path(&weights), "c-webgpu", path(&blob))[..], &["--weights-blob"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(blob.join("cgnet.weights").is_file() && !blob.join("cgnet_weights.c").exists());
    assert!(std::fs::read_to_string(blob.join("cgnet_gpu.h")).unwrap().contains("const float *weights);"));

    let base = ["bench", path(&model), "--weights", path(&weights), "--target", "c-webgpu"];
    let bench = |extra: &[&'static str]| -> Vec<&str> { base.iter().chain(extra).copied().collect() };
    let stderr = fails(&bench(&["--threads", "2"]));
    assert!(stderr.contains("--threads does not apply to --target c-webgpu"), "{stderr}");
    if let Err(e) = WgpuNative::find() {
        assert!(!WgpuNative::is_configured(), "{e}");
        eprintln!("SKIPPED cgnetc run --target c-webgpu: {e}");
        let stderr = fails(&bench(&[]));
        assert!(stderr.contains("no webgpu.h implementation"), "{stderr}");
        return;
    }
    let o = cgnetc(&bench(&["--iters", "2"]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    if stderr.contains("no GPU adapter") && std::env::var_os("CGNET_REQUIRE_GPU").is_none() {
        eprintln!("SKIPPED cgnetc bench/run --target c-webgpu: {stderr}");
        return;
    }
    assert!(o.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("target c-webgpu threads 1: median"));
    run_and_compare(&["--target", "c-webgpu"]);
}

/// `cgnetc build` killed at any moment leaves each visible file either as it was
/// or complete (each is written under a hidden temporary name, then renamed);
/// only hidden temporaries may be left over.
#[test]
fn a_killed_build_leaves_every_file_old_or_complete() {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/camvid.cgnet");
    let build_into = |target: &str, out: &Path| {
        let o = cgnetc(&["build", path(&model), "--target", target, "--out", path(out)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let files = |out: &Path| -> std::collections::BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect()
    };
    // The same file names from two targets: c-scalar is "old", c-avx2 "new".
    let (old_dir, new_dir) = (dir.path().join("old"), dir.path().join("new"));
    build_into("c-scalar", &old_dir);
    build_into("c-avx2", &new_dir);
    let (old, new) = (files(&old_dir), files(&new_dir));
    assert_eq!(old.keys().collect::<Vec<_>>(), new.keys().collect::<Vec<_>>());
    assert_ne!(old["camvid.c"], new["camvid.c"]);
    let out = dir.path().join("out");
    let mut outcomes = std::collections::BTreeSet::new();
    for delay_ms in [0, 10, 30, 60, 100, 150, 250, 400, 700] {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir(&out).unwrap();
        for (name, bytes) in &old {
            std::fs::write(out.join(name), bytes).unwrap();
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_cgnetc"))
            .args(["build", path(&model), "--target", "c-avx2", "--out", path(&out)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        for (name, bytes) in files(&out) {
            if name.starts_with('.') {
                continue; // a temporary of the killed run
            }
            let state = if old.get(&name) == Some(&bytes) {
                "old"
            } else if new.get(&name) == Some(&bytes) {
                "new"
            } else {
                panic!("killed after {delay_ms} ms: {name} is neither the old file nor the complete new one")
            };
            outcomes.insert(state);
        }
    }
    eprintln!("killed builds left files that were: {outcomes:?}");
}
