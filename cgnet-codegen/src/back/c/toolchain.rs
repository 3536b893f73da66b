//! Building emitted C with a small harness and running it: `cc` natively for
//! c-scalar and c-avx2; `aarch64-linux-gnu-gcc` + `qemu-aarch64` for c-neon;
//! `cc` and a wgpu-native library (see [`WgpuNative`]) for c-webgpu.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{emit, CTarget, FileContents, Options};
use crate::back::wgsl::WgslError;
use crate::back::CompiledModel;

/// The flags emitted C must compile cleanly with.
pub const STRICT_FLAGS: &[&str] = &["-std=c99", "-O3", "-Wall", "-Wextra", "-Werror", "-pedantic"];

#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("`{tool}` was not found; install the Debian package(s) `{package}` (needed for {target})")]
    Missing { tool: String, package: &'static str, target: &'static str },
    #[error("compiling the emitted C failed: {command}\n{stderr}")]
    Compile { command: String, stderr: String },
    #[error("the compiled harness failed ({status}): {stderr}")]
    Run { status: String, stderr: String },
    #[error(
        "no webgpu.h implementation for c-webgpu: {0}. Set {WGPU_NATIVE_ENV} to a folder holding \
         libwgpu_native-release.so (or libwgpu_native.so), webgpu.h and wgpu.h, e.g. the `wgpu/resources` \
         folder of the PyPI wheel `wgpu==0.32.0`; `.ci/fetch-wgpu-native` unpacks it into the default place"
    )]
    NoWebGpu(String),
    #[error("{target} has no CPU kernels to test")]
    NoKernels { target: &'static str },
    #[error(transparent)]
    Wgsl(#[from] WgslError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where c-webgpu builds find wgpu-native: this variable, else
/// `<cgnetc cache>/wgpu-native` (see [`default_cache_dir`]).
pub const WGPU_NATIVE_ENV: &str = "CGNET_WGPU_NATIVE_DIR";

/// A wgpu-native build: its library and its two headers.
#[derive(Clone, Debug)]
pub struct WgpuNative {
    pub library: PathBuf,
    /// `webgpu.h` and `wgpu.h`.
    pub headers: [PathBuf; 2],
}

impl WgpuNative {
    /// The folder named by [`WGPU_NATIVE_ENV`] (an error if it lacks a file),
    /// else the default folder. Either may hold the files directly (the PyPI
    /// wheel's `wgpu/resources`) or as a release archive does
    /// (`include/webgpu/*.h`, `lib/libwgpu_native.so`).
    pub fn find() -> Result<Self, ToolchainError> {
        let (dir, explicit) = match std::env::var_os(WGPU_NATIVE_ENV).filter(|v| !v.is_empty()) {
            Some(dir) => (PathBuf::from(dir), true),
            None => match default_cache_dir() {
                Some(cache) => (cache.join("wgpu-native"), false),
                None => return Err(ToolchainError::NoWebGpu("no cache folder to look in".into())),
            },
        };
        let first = |candidates: &[&str]| candidates.iter().map(|c| dir.join(c)).find(|p| p.is_file());
        let library = first(&[
            "libwgpu_native-release.so",
            "libwgpu_native.so",
            "lib/libwgpu_native.so",
            "wgpu/resources/libwgpu_native-release.so",
        ]);
        let webgpu = first(&["webgpu.h", "include/webgpu/webgpu.h", "wgpu/resources/webgpu.h"]);
        let wgpu = first(&["wgpu.h", "include/webgpu/wgpu.h", "wgpu/resources/wgpu.h"]);
        match (library, webgpu, wgpu) {
            (Some(library), Some(webgpu), Some(wgpu)) => Ok(Self { library, headers: [webgpu, wgpu] }),
            _ => {
                let which = if explicit {
                    format!("the folder {} ({WGPU_NATIVE_ENV})", dir.display())
                } else {
                    format!("{WGPU_NATIVE_ENV} is not set and the default folder {}", dir.display())
                };
                Err(ToolchainError::NoWebGpu(format!("{which} lacks the library or a header")))
            }
        }
    }

    /// Whether the variable names a folder: then a missing file is an error, not a skip.
    pub fn is_configured() -> bool {
        std::env::var_os(WGPU_NATIVE_ENV).is_some_and(|v| !v.is_empty())
    }
}

/// A compiler (and for cross targets, an emulator) for one C target.
pub struct Toolchain {
    pub target: CTarget,
    pub compiler: String,
    /// Command prefix that runs a built program (qemu for AArch64).
    pub runner: Vec<String>,
    /// The webgpu.h implementation (c-webgpu only).
    pub webgpu: Option<WgpuNative>,
}

fn exists(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

impl Toolchain {
    pub fn find(target: CTarget) -> Result<Self, ToolchainError> {
        match target {
            CTarget::Scalar | CTarget::Avx2 | CTarget::Avx512 => {
                let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
                if !exists(&compiler) {
                    return Err(ToolchainError::Missing { tool: compiler, package: "gcc", target: target.name() });
                }
                Ok(Self { target, compiler, runner: Vec::new(), webgpu: None })
            }
            CTarget::WebGpu => {
                let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
                if !exists(&compiler) {
                    return Err(ToolchainError::Missing { tool: compiler, package: "gcc", target: target.name() });
                }
                Ok(Self { target, compiler, runner: Vec::new(), webgpu: Some(WgpuNative::find()?) })
            }
            CTarget::Neon => {
                let compiler = "aarch64-linux-gnu-gcc".to_string();
                if !exists(&compiler) {
                    return Err(ToolchainError::Missing {
                        tool: compiler,
                        package: "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
                        target: target.name(),
                    });
                }
                if !exists("qemu-aarch64") {
                    return Err(ToolchainError::Missing {
                        tool: "qemu-aarch64".into(),
                        package: "qemu-user",
                        target: target.name(),
                    });
                }
                let runner = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"].map(String::from).to_vec();
                Ok(Self { target, compiler, runner, webgpu: None })
            }
        }
    }

    /// A command that runs a program built for this target (under qemu for AArch64).
    pub fn command(&self, exe: &Path) -> Command {
        match self.runner.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    /// Compiles `sources` (in `dir`) to `dir/output` with the strict flags.
    pub fn compile(
        &self,
        dir: &Path,
        sources: &[String],
        output: &str,
        extra: &[&str],
    ) -> Result<PathBuf, ToolchainError> {
        let mut cmd = Command::new(&self.compiler);
        cmd.current_dir(dir).args(STRICT_FLAGS).args(self.target.flags()).args(extra).args(sources);
        if let Some(webgpu) = &self.webgpu {
            // The headers as `webgpu/*.h` (their usual install path), outside the
            // strict warnings; the library by path, found again at run time.
            let include = dir.join("webgpu-include");
            std::fs::create_dir_all(include.join("webgpu"))?;
            for header in &webgpu.headers {
                std::fs::copy(header, include.join("webgpu").join(header.file_name().unwrap_or_default()))?;
            }
            let lib_dir = webgpu.library.parent().unwrap_or(Path::new("."));
            cmd.arg("-DCGNET_WGPU_NATIVE").arg("-isystem").arg(&include).arg(&webgpu.library);
            cmd.arg(format!("-Wl,-rpath,{}", lib_dir.display()));
        }
        cmd.args(["-o", output, "-lm", "-lpthread"]);
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(ToolchainError::Compile {
                command: format!("{cmd:?}"),
                stderr: String::from_utf8_lossy(&out.stderr).chars().take(4000).collect(),
            });
        }
        Ok(dir.join(output))
    }
}

/// Outputs of one harness run.
pub struct HarnessOutputs {
    pub logits: Vec<f32>,
    pub scores: Vec<f32>,
    pub labels: Vec<u8>,
    /// Median milliseconds of the timed `run` calls, when asked for.
    pub median_ms: Option<f64>,
}

/// The harness source for `model` on `target`, specialised to its names and weight mode.
pub fn harness_source(model: &CompiledModel, target: CTarget, weights_blob: bool) -> String {
    let (n, u) = (&model.name, model.name.to_uppercase());
    let (decl, load, arg, free) = if weights_blob {
        (
            "float *weights;".to_string(),
            format!("weights = (float *)read_file(argv[1], \"{n}.weights\", {u}_WEIGHTS_BYTES);"),
            "weights, ",
            "free(weights);",
        )
    } else {
        (
            format!("extern const float {n}_packed_weights[];"),
            format!(
                "if ((size_t)(const void *){n}_packed_weights % 64 != 0) {{\n        \
                 fprintf(stderr, \"harness: the compiled-in weights are not 64-byte aligned\\n\");\n        \
                 return 2;\n    }}"
            ),
            "",
            "",
        )
    };
    let (includes, main) = match target {
        CTarget::WebGpu => (format!("#include \"{n}_gpu.h\""), include_str!("webgpu_harness.c")),
        _ => (format!("#include \"cgnet_pthread_pool.h\"\n#include \"{n}.h\""), include_str!("harness.c")),
    };
    [include_str!("harness_io.c"), main]
        .concat()
        .replace("HARNESS_INCLUDES", &includes)
        .replace("MODEL_", &format!("{u}_"))
        .replace("model_", &format!("{n}_"))
        .replace("WEIGHTS_DECL", &decl)
        .replace("WEIGHTS_LOAD", &load)
        .replace("WEIGHTS_ARG ", arg)
        .replace(" WEIGHTS_COMMA_ARG", if weights_blob { ", weights" } else { "" })
        .replace("WEIGHTS_FREE", free)
}

/// Emits `model` into `dir`, builds it with the harness, and returns the executable.
pub fn build(model: &CompiledModel, options: &Options, dir: &Path) -> Result<PathBuf, ToolchainError> {
    let toolchain = Toolchain::find(options.target)?;
    let sources = write_sources(model, options, dir)?;
    toolchain.compile(dir, &sources, "harness", &[])
}

/// Writes the emitted files and the harness into `dir`; returns the C sources.
fn write_sources(model: &CompiledModel, options: &Options, dir: &Path) -> Result<Vec<String>, ToolchainError> {
    let mut sources = Vec::new();
    for (name, bytes) in harness_files(model, options)? {
        std::fs::write(dir.join(&name), bytes)?;
        if name.ends_with(".c") {
            sources.push(name);
        }
    }
    Ok(sources)
}

/// Every file of a harness build: the emitted model plus `harness.c`.
fn harness_files(model: &CompiledModel, options: &Options) -> Result<Vec<(String, Vec<u8>)>, ToolchainError> {
    let mut files: Vec<(String, Vec<u8>)> = emit(model, options)?
        .into_iter()
        .map(|file| {
            let bytes = match file.contents {
                FileContents::Text(t) => t.into_bytes(),
                FileContents::Binary(b) => b,
            };
            (file.name, bytes)
        })
        .collect();
    files.push(("harness.c".into(), harness_source(model, options.target, options.weights_blob).into_bytes()));
    Ok(files)
}

/// A harness build that came from the cache or was just made.
pub struct CachedBuild {
    pub exe: PathBuf,
    /// False when this call compiled it.
    pub hit: bool,
}

/// Like [`build`], but once per distinct program: the build is kept in
/// `cache/<fingerprint>/`, where the fingerprint is the SHA-256 of the tool
/// version, the target, the compiler and every emitted file (which carry the
/// spec and the weights). Safe for concurrent callers: a build is made in a
/// private folder and renamed into place.
pub fn build_cached(model: &CompiledModel, options: &Options, cache: &Path) -> Result<CachedBuild, ToolchainError> {
    use sha2::{Digest, Sha256};
    let toolchain = Toolchain::find(options.target)?;
    let mut hash = Sha256::new();
    let library = toolchain.webgpu.as_ref().map(|w| w.library.display().to_string()).unwrap_or_default();
    for part in [env!("CARGO_PKG_VERSION"), options.target.name(), &toolchain.compiler, &library] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let files = harness_files(model, options)?;
    for (name, bytes) in &files {
        for part in [name.as_bytes(), bytes] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
    }
    let key: String = hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    let folder = cache.join(format!("{}-{}-{key}", model.name, options.target.name()));
    let exe = folder.join("harness");
    if exe.is_file() {
        return Ok(CachedBuild { exe, hit: true });
    }
    std::fs::create_dir_all(cache)?;
    let scratch = tempfile::Builder::new().prefix(".build-").tempdir_in(cache)?;
    write_sources(model, options, scratch.path())?;
    let sources: Vec<String> = files.into_iter().map(|(n, _)| n).filter(|n| n.ends_with(".c")).collect();
    toolchain.compile(scratch.path(), &sources, "harness", &[])?;
    let scratch = scratch.keep();
    if std::fs::rename(&scratch, &folder).is_err() {
        // Another process finished the same build first; use theirs.
        let _ = std::fs::remove_dir_all(&scratch);
        if !exe.is_file() {
            return Err(ToolchainError::Io(std::io::Error::other(format!(
                "cannot store the build in {}",
                folder.display()
            ))));
        }
    }
    Ok(CachedBuild { exe, hit: false })
}

/// Where `cgnetc` keeps compiled C: `$CGNETC_CACHE_DIR`, else the platform cache
/// folder (`$XDG_CACHE_HOME/cgnetc` or `~/.cache/cgnetc`); `None` when there is none.
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("CGNETC_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("cgnetc")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/cgnetc")))
}

/// Runs a built harness on `input` (NCHW) with `threads`, exchanging files in
/// `dir` (the harness's folder, or any other when the build is shared); `iters > 0`
/// also times `run`. Blob-mode builds read their weights from `dir`.
pub fn run(
    target: CTarget,
    exe: &Path,
    dir: &Path,
    input: &[f32],
    threads: usize,
    iters: usize,
) -> Result<HarnessOutputs, ToolchainError> {
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    run_harness(target, exe, dir, ("input.bin", &bytes), threads, iters)
}

/// [`run`] through the `_rgb8` entry points, on a picture (interleaved 8-bit
/// RGB of the model's size). CPU targets only.
pub fn run_picture(
    target: CTarget,
    exe: &Path,
    dir: &Path,
    picture: &[u8],
    threads: usize,
) -> Result<HarnessOutputs, ToolchainError> {
    run_harness(target, exe, dir, ("picture.bin", picture), threads, 0)
}

/// Writes the harness's input file (`input.bin` or `picture.bin`; the harness
/// reads the picture when there is one, so the other is removed), runs it.
fn run_harness(
    target: CTarget,
    exe: &Path,
    dir: &Path,
    (file, bytes): (&str, &[u8]),
    threads: usize,
    iters: usize,
) -> Result<HarnessOutputs, ToolchainError> {
    for stale in ["input.bin", "picture.bin"] {
        match std::fs::remove_file(dir.join(stale)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    std::fs::write(dir.join(file), bytes)?;
    let toolchain = Toolchain::find(target)?;
    let out = toolchain.command(exe).arg(dir).arg(threads.to_string()).arg(iters.to_string()).output()?;
    if !out.status.success() {
        return Err(ToolchainError::Run {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let floats = |name: &str| -> Result<Vec<f32>, ToolchainError> {
        let bytes = std::fs::read(dir.join(name))?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let median_ms = stdout.split_whitespace().skip_while(|w| *w != "median_ms").nth(1).and_then(|v| v.parse().ok());
    Ok(HarnessOutputs {
        logits: floats("logits.bin")?,
        scores: floats("scores.bin")?,
        labels: std::fs::read(dir.join("labels.bin"))?,
        median_ms,
    })
}

/// One case of the C kernel battery: steps and the memories they run on.
pub struct BatteryCase {
    /// The steps, in the groups they run in (`cg_exec_group`; a group of one is a step alone).
    pub groups: Vec<Vec<cgnet_runtime::program::Step>>,
    pub arena: Vec<f32>,
    pub input: Vec<f32>,
    pub weights: Vec<f32>,
}

/// The arena of one case after its serial run and after its run on `threads` threads.
pub struct BatteryResult {
    pub serial: Vec<f32>,
    pub parallel: Vec<f32>,
}

/// Builds `super::battery_source` for `target` in `dir`, runs every case
/// serially and on `threads` threads, and returns the arenas.
pub fn run_battery(
    target: CTarget,
    cases: &[BatteryCase],
    threads: usize,
    dir: &Path,
) -> Result<Vec<BatteryResult>, ToolchainError> {
    if !target.is_cpu() {
        return Err(ToolchainError::NoKernels { target: target.name() });
    }
    let toolchain = Toolchain::find(target)?;
    let groups: Vec<Vec<Vec<_>>> = cases.iter().map(|c| c.groups.clone()).collect();
    std::fs::write(dir.join("battery.c"), super::battery_source(target, &groups))?;
    std::fs::write(dir.join("cgnet_pthread_pool.h"), include_str!("pthread_pool.h"))?;
    let exe = toolchain.compile(dir, &["battery.c".to_string()], "battery", &[])?;
    let mut data = Vec::new();
    for case in cases {
        for len in [case.arena.len(), case.input.len(), case.weights.len()] {
            data.extend_from_slice(&(len as u64).to_le_bytes());
        }
        for v in case.arena.iter().chain(&case.input).chain(&case.weights) {
            data.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(dir.join("cases.bin"), data)?;
    let out = toolchain
        .command(&exe)
        .arg(dir.join("cases.bin"))
        .arg(dir.join("out.bin"))
        .arg(threads.to_string())
        .output()?;
    if !out.status.success() {
        return Err(ToolchainError::Run {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let bytes = std::fs::read(dir.join("out.bin"))?;
    let mut floats = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    Ok(cases
        .iter()
        .map(|case| {
            let serial = floats.by_ref().take(case.arena.len()).collect();
            let parallel = floats.by_ref().take(case.arena.len()).collect();
            BatteryResult { serial, parallel }
        })
        .collect())
}
