//! Building emitted C with a small harness and running it: `cc` natively for
//! c-scalar and c-avx2; `aarch64-linux-gnu-gcc` + `qemu-aarch64` for c-neon.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{emit, CTarget, FileContents, Options};
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
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A compiler (and for cross targets, an emulator) for one C target.
pub struct Toolchain {
    pub target: CTarget,
    pub compiler: String,
    /// Command prefix that runs a built program (qemu for AArch64).
    pub runner: Vec<String>,
}

fn exists(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

impl Toolchain {
    pub fn find(target: CTarget) -> Result<Self, ToolchainError> {
        match target {
            CTarget::Scalar | CTarget::Avx2 => {
                let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
                if !exists(&compiler) {
                    return Err(ToolchainError::Missing { tool: compiler, package: "gcc", target: target.name() });
                }
                Ok(Self { target, compiler, runner: Vec::new() })
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
                Ok(Self { target, compiler, runner })
            }
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

/// The harness source for `model`, specialised to its names and weight mode.
pub fn harness_source(model: &CompiledModel, weights_blob: bool) -> String {
    let (n, u) = (&model.name, model.name.to_uppercase());
    let (decl, load, arg, free) = if weights_blob {
        (
            "float *weights;".to_string(),
            format!("weights = (float *)read_file(argv[1], \"{n}.weights\", {u}_WEIGHTS_BYTES);"),
            "weights, ",
            "free(weights);",
        )
    } else {
        (String::new(), String::new(), "", "")
    };
    include_str!("harness.c")
        .replace("MODEL.h", &format!("{n}.h"))
        .replace("MODEL_", &format!("{u}_"))
        .replace("model_", &format!("{n}_"))
        .replace("WEIGHTS_DECL", &decl)
        .replace("WEIGHTS_LOAD", &load)
        .replace("WEIGHTS_ARG ", arg)
        .replace("WEIGHTS_FREE", free)
}

/// Emits `model` into `dir`, builds it with the harness, and returns the executable.
pub fn build(model: &CompiledModel, options: &Options, dir: &Path) -> Result<PathBuf, ToolchainError> {
    let toolchain = Toolchain::find(options.target)?;
    let mut sources = Vec::new();
    for file in emit(model, options) {
        match &file.contents {
            FileContents::Text(t) => std::fs::write(dir.join(&file.name), t)?,
            FileContents::Binary(b) => std::fs::write(dir.join(&file.name), b)?,
        }
        if file.name.ends_with(".c") {
            sources.push(file.name);
        }
    }
    std::fs::write(dir.join("harness.c"), harness_source(model, options.weights_blob))?;
    sources.push("harness.c".into());
    toolchain.compile(dir, &sources, "harness", &[])
}

/// Runs a built harness on `input` (NCHW) with `threads`; `iters > 0` also times `run`.
pub fn run(
    target: CTarget,
    exe: &Path,
    input: &[f32],
    threads: usize,
    iters: usize,
) -> Result<HarnessOutputs, ToolchainError> {
    let dir = exe.parent().expect("the harness is built inside a directory");
    std::fs::write(dir.join("input.bin"), input.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    let toolchain = Toolchain::find(target)?;
    let mut cmd = match toolchain.runner.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let out = cmd.arg(dir).arg(threads.to_string()).arg(iters.to_string()).output()?;
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
