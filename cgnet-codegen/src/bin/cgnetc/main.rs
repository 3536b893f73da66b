//! `cgnetc`: the cgnet compiler's command line.

mod failure;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use cgnet_codegen::back::c::{self, CTarget};
use cgnet_codegen::back::{self, native, CompiledModel};
use cgnet_codegen::ir::{Graph, OutputKind};
use cgnet_codegen::report::InspectReport;
use cgnet_codegen::spec::{read_spec_file, ModelSpec};
use cgnet_codegen::testing::{bind_random_weights, image_like_input};
use cgnet_codegen::{interp, passes, plan};
use cgnet_codegen::{lower, verify, Tensor};
use cgnet_runtime::kernels::{Isa, ParallelFor};
use cgnet_runtime::{read_f32_tensor, write_tensors_atomically, OutputTensor, ThreadPool, Weights};
use clap::{Parser, Subcommand, ValueEnum};
use failure::Failure;

/// Compiles CGNet segmentation models: inspect them, run them on a target, benchmark them.
#[derive(Parser)]
#[command(name = "cgnetc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model on one input and write logits, scores and labels.
    Run(RunArgs),
    /// Print parameters, MACs per layer, the fusions applied and the arena plan.
    Inspect(InspectArgs),
    /// Time inference on a target: median milliseconds and GFLOP/s.
    Bench(BenchArgs),
    /// Emit standalone C (NAME.h, NAME.c, weights, CMakeLists.txt) for a mobile SDK.
    Build(BuildArgs),
}

#[derive(clap::Args)]
struct BuildArgs {
    /// Model description: a `.cgnet` file (the `cgnet!` grammar) or a JSON spec.
    #[arg(long, value_name = "SPEC")]
    model: PathBuf,
    /// Weights (.safetensors, authors' state-dict keys).
    #[arg(long, value_name = "W.safetensors")]
    weights: PathBuf,
    /// c-scalar, c-avx2 or c-neon.
    #[arg(long, value_enum)]
    target: Target,
    /// Output folder (created if missing; existing files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Symbol prefix (lower case); defaults to the spec's `name`, else `cgnet`.
    #[arg(long)]
    name: Option<String>,
    /// Write the weights as a binary file `NAME.weights` passed at run time, not a C array.
    #[arg(long)]
    weights_blob: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Model description: a `.cgnet` file (the `cgnet!` grammar) or a JSON spec.
    #[arg(long, value_name = "SPEC")]
    model: PathBuf,
    /// Weights (.safetensors, authors' state-dict keys; f32, f16 or bf16).
    #[arg(long, value_name = "W.safetensors")]
    weights: PathBuf,
    /// Input file holding `input`, f32 [1, 3, H, W] (NCHW, as PyTorch).
    #[arg(long, value_name = "IN.safetensors")]
    input: PathBuf,
    /// Output file: `logits` f32 [1,C,H/8,W/8], `scores` f32 [1,C,H,W], `labels` i32 [1,H,W].
    #[arg(long, value_name = "OUT.safetensors")]
    out: PathBuf,
    /// Where to run it.
    #[arg(long, value_enum, default_value_t = Target::Interp)]
    target: Target,
    /// Run only the first N fusion passes (to bisect a wrong result; `interp-planned` only).
    #[arg(long, value_name = "N")]
    stop_after_pass: Option<usize>,
    /// Worker threads for the compiled targets.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(clap::Args)]
struct InspectArgs {
    /// Model description: a `.cgnet` file (the `cgnet!` grammar) or a JSON spec.
    #[arg(long, value_name = "SPEC")]
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print the graph IR as text instead of the report.
    #[arg(long, value_enum)]
    ir: Option<IrStage>,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Model description: a `.cgnet` file (the `cgnet!` grammar) or a JSON spec.
    #[arg(long, value_name = "SPEC")]
    model: PathBuf,
    /// Weights; random weights with realistic scales when omitted.
    #[arg(long, value_name = "W.safetensors")]
    weights: Option<PathBuf>,
    /// A compiled target.
    #[arg(long, value_enum, default_value_t = Target::RustAvx2)]
    target: Target,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed iterations (after 2 warm-up runs).
    #[arg(long, default_value_t = 10)]
    iters: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IrStage {
    /// As lowered from the spec, layer by layer like the authors' model.
    Unfused,
    /// After every fusion pass.
    Fused,
}

/// What an inference produces when the report plans it: logits and labels
/// (full-resolution scores are only materialised when asked for).
const INFERENCE_OUTPUTS: &[OutputKind] = &[OutputKind::Logits, OutputKind::Labels];

/// Every place a model can run. Targets of later milestones are listed so that
/// scripts can name them; choosing one that is not built yet is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    /// The reference interpreter on the unfused graph (the numeric oracle).
    Interp,
    /// The interpreter on the fused graph, every tensor at its planned arena offset.
    InterpPlanned,
    /// The compiled program on the runtime's portable kernels (what `cgnet!` runs without AVX2).
    RustScalar,
    /// The compiled program on the runtime's AVX2 + FMA kernels.
    RustAvx2,
    /// Emitted portable C, compiled with `cc` and run.
    CScalar,
    /// Emitted C with AVX2 + FMA intrinsics.
    CAvx2,
    /// Emitted C with AArch64 NEON intrinsics, run under qemu-aarch64.
    CNeon,
    /// Emitted WGSL through the wgpu runtime shim.
    Gpu,
}

impl Target {
    fn name(self) -> String {
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }

    fn c_target(self) -> Option<CTarget> {
        match self {
            Target::CScalar => Some(CTarget::Scalar),
            Target::CAvx2 => Some(CTarget::Avx2),
            Target::CNeon => Some(CTarget::Neon),
            _ => None,
        }
    }

    fn isa(self) -> Option<Isa> {
        match self {
            Target::RustScalar => Some(Isa::Scalar),
            Target::RustAvx2 => Some(Isa::Avx2),
            _ => None,
        }
    }

    fn not_available(self) -> Failure {
        Failure::new(format!(
            "target `{}` is not available in this version of cgnetc (available: interp, interp-planned, rust-scalar, rust-avx2, c-scalar, c-avx2, c-neon)",
            self.name()
        ))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Bench(args) => bench(&args),
        Command::Build(args) => build(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprint!("{failure}");
            ExitCode::FAILURE
        }
    }
}

/// Reads a model description: a `.cgnet` file (the `cgnet!` grammar) or a JSON spec.
fn read_model(path: &Path) -> Result<ModelSpec, Failure> {
    if path.extension().is_some_and(|e| e == "cgnet") {
        return cgnet_codegen::syntax::parse_file(path).map(|decl| decl.spec).map_err(Failure::new);
    }
    Ok(read_spec_file(path)?)
}

fn build_graph(spec: &ModelSpec) -> Result<Graph, Failure> {
    let graph = lower(spec);
    verify(&graph)?;
    if let Some(expected) = spec.parameters {
        let actual = graph.learnable_parameters();
        if expected != actual {
            return Err(Failure::new(format!(
                "the spec says `parameters: {expected}` but its topology has {actual} learnable parameters"
            )));
        }
    }
    Ok(graph)
}

/// Reads the spec and the weights; returns the bound graph and the weights' SHA-256.
fn load_model(model: &Path, weights: &Path) -> Result<(ModelSpec, Graph, String), Failure> {
    let spec = read_model(model)?;
    let mut graph = build_graph(&spec)?;
    let loaded = Weights::load(weights, &graph.expected_weights())?;
    graph.bind(&loaded);
    let bytes = std::fs::read(weights).map_err(|e| Failure::new(format!("cannot read {}: {e}", weights.display())))?;
    Ok((spec, graph, back::program::sha256_hex(&bytes)))
}

/// Optimises a graph for the given outputs and plans its arena.
fn optimise_and_plan(
    graph: &Graph,
    stop_after: Option<usize>,
    outputs: &[OutputKind],
) -> Result<(Graph, Vec<passes::Applied>, plan::Plan), Failure> {
    let mut graph = graph.clone();
    graph.retain_outputs(outputs);
    let (fused, applied) = passes::optimize(&graph.compact(), stop_after)?;
    let plan = plan::plan(&fused);
    Ok((fused, applied, plan))
}

/// The three results of one inference, in the output file's layout.
struct Results {
    logits: Tensor,
    scores: Tensor,
    labels: Vec<i32>,
}

fn pool(threads: usize) -> Result<Option<ThreadPool>, Failure> {
    if threads == 0 {
        return Err(Failure::new("--threads must be at least 1"));
    }
    if threads == 1 {
        return Ok(None);
    }
    ThreadPool::new(threads).map(Some).map_err(|e| Failure::new(format!("cannot start {threads} threads: {e}")))
}

fn run_compiled(model: &CompiledModel, isa: Isa, threads: usize, input: &Tensor) -> Result<Results, Failure> {
    if !isa.is_supported() {
        return Err(Failure::new(format!("this CPU does not support the {isa:?} kernels")));
    }
    let pool = pool(threads)?;
    let out = native::execute(model, isa, pool.as_ref().map(|p| p as &dyn ParallelFor), &input.data)
        .map_err(|e| Failure::new(format!("internal error in the compiled program: {e}")))?;
    let (c, h, w) = (model.classes, model.height, model.width);
    Ok(Results {
        logits: Tensor { c, h: model.logits.h, w: model.logits.w, data: out.logits },
        scores: Tensor { c, h, w, data: out.scores },
        labels: out.labels.iter().map(|l| i32::from(*l)).collect(),
    })
}

/// Builds the emitted C with the harness in a temporary folder and runs it;
/// `iters > 0` also returns the median ms of that many `run` calls.
fn run_c(
    model: &CompiledModel,
    target: CTarget,
    threads: usize,
    input: &Tensor,
    iters: usize,
) -> Result<(Results, Option<f64>), Failure> {
    if threads == 0 {
        return Err(Failure::new("--threads must be at least 1"));
    }
    let dir = tempfile::Builder::new()
        .prefix("cgnetc-")
        .tempdir()
        .map_err(|e| Failure::new(format!("cannot create a temporary folder: {e}")))?;
    let options = c::Options { target, weights_blob: true };
    let exe = c::toolchain::build(model, &options, dir.path())?;
    let out = c::toolchain::run(target, &exe, &input.data, threads, iters)?;
    let (c, h, w) = (model.classes, model.height, model.width);
    let results = Results {
        logits: Tensor { c, h: model.logits.h, w: model.logits.w, data: out.logits },
        scores: Tensor { c, h, w, data: out.scores },
        labels: out.labels.iter().map(|l| i32::from(*l)).collect(),
    };
    Ok((results, out.median_ms))
}

fn build(args: &BuildArgs) -> Result<(), Failure> {
    let Some(target) = args.target.c_target() else {
        return Err(Failure::new(format!(
            "`cgnetc build` emits C: --target must be c-scalar, c-avx2 or c-neon (got `{}`)",
            args.target.name()
        )));
    };
    let (mut spec, graph, sha) = load_model(&args.model, &args.weights)?;
    if let Some(name) = &args.name {
        spec.name = Some(name.clone());
        spec.validate()?;
    }
    let model = back::compile(&spec, &graph, &sha)?;
    let files = c::emit(&model, &c::Options { target, weights_blob: args.weights_blob });
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", args.out.display())))?;
    let written = write_all_or_nothing(&args.out, &files)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Writes every file through a temporary name, then renames them all; on any
/// failure removes what it wrote, so no partial output is left behind.
fn write_all_or_nothing(dir: &Path, files: &[c::File]) -> Result<Vec<PathBuf>, Failure> {
    let mut temps = Vec::new();
    let cleanup = |temps: &[(PathBuf, PathBuf)]| {
        for (tmp, _) in temps {
            let _ = std::fs::remove_file(tmp);
        }
    };
    for file in files {
        let path = dir.join(&file.name);
        let tmp = dir.join(format!(".{}.tmp{}", file.name, std::process::id()));
        let bytes: &[u8] = match &file.contents {
            c::FileContents::Text(t) => t.as_bytes(),
            c::FileContents::Binary(b) => b,
        };
        if let Err(e) = std::fs::write(&tmp, bytes) {
            let _ = std::fs::remove_file(&tmp);
            cleanup(&temps);
            return Err(Failure::new(format!("cannot write {}: {e}", path.display())));
        }
        temps.push((tmp, path));
    }
    for (tmp, path) in &temps {
        if let Err(e) = std::fs::rename(tmp, path) {
            cleanup(&temps);
            return Err(Failure::new(format!("cannot write {}: {e}", path.display())));
        }
    }
    Ok(temps.into_iter().map(|(_, p)| p).collect())
}

fn run(args: &RunArgs) -> Result<(), Failure> {
    if let Some(n) = args.stop_after_pass {
        if args.target != Target::InterpPlanned || n > passes::PIPELINE.len() {
            return Err(Failure::new(format!(
                "--stop-after-pass takes 0..={} and needs --target interp-planned",
                passes::PIPELINE.len()
            )));
        }
    }
    if args.target == Target::Gpu {
        return Err(args.target.not_available());
    }
    let (spec, graph, sha) = load_model(&args.model, &args.weights)?;
    let (shape, data) = read_f32_tensor(&args.input, "input")?;
    if shape != [1, 3, spec.height, spec.width] {
        return Err(Failure::new(format!(
            "input in {} has shape {shape:?}; the model takes [1, 3, {}, {}]",
            args.input.display(),
            spec.height,
            spec.width
        )));
    }
    let input = Tensor { c: 3, h: spec.height, w: spec.width, data };
    let results = match args.target {
        Target::Interp | Target::InterpPlanned => {
            let mut outputs = if args.target == Target::Interp {
                interp::run(&graph, &input)?
            } else {
                let (fused, _, plan) = optimise_and_plan(&graph, args.stop_after_pass, &OutputKind::ALL)?;
                interp::run_planned(&fused, &plan, &input)?
            };
            let mut take = |k| outputs.remove(&k).expect("all three outputs are requested");
            let (logits, scores, labels) =
                (take(OutputKind::Logits), take(OutputKind::Scores), take(OutputKind::Labels));
            Results { logits, scores, labels: labels.data.iter().map(|v| *v as i32).collect() }
        }
        target => {
            let model = back::compile(&spec, &graph, &sha)?;
            match target.c_target() {
                Some(c) => run_c(&model, c, args.threads, &input, 0)?.0,
                None => {
                    run_compiled(&model, target.isa().expect("compiled targets have an ISA"), args.threads, &input)?
                }
            }
        }
    };
    write_results(&args.out, &results)
}

fn write_results(path: &Path, r: &Results) -> Result<(), Failure> {
    let shape4 = |t: &Tensor| vec![1, t.c, t.h, t.w];
    write_tensors_atomically(
        path,
        &[
            OutputTensor::F32 { name: "logits", shape: shape4(&r.logits), data: &r.logits.data },
            OutputTensor::F32 { name: "scores", shape: shape4(&r.scores), data: &r.scores.data },
            OutputTensor::I32 { name: "labels", shape: vec![1, r.scores.h, r.scores.w], data: &r.labels },
        ],
    )?;
    Ok(())
}

fn inspect(args: &InspectArgs) -> Result<(), Failure> {
    let spec = read_model(&args.model)?;
    let graph = build_graph(&spec)?;
    let (fused, fusions, plan) = optimise_and_plan(&graph, None, INFERENCE_OUTPUTS)?;
    if let Some(which) = args.ir {
        print!("{}", if which == IrStage::Fused { &fused } else { &graph });
        return Ok(());
    }
    let report = InspectReport::new(&spec, &graph, &fused, fusions, plan);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Failure::new(e.to_string()))?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn bench(args: &BenchArgs) -> Result<(), Failure> {
    if args.target.isa().is_none() && args.target.c_target().is_none() {
        return Err(args.target.not_available());
    }
    if args.iters == 0 {
        return Err(Failure::new("--iters must be at least 1"));
    }
    let (spec, graph, sha) = match &args.weights {
        Some(w) => load_model(&args.model, w)?,
        None => {
            let spec = read_model(&args.model)?;
            let mut graph = build_graph(&spec)?;
            bind_random_weights(&mut graph, 1);
            (spec, graph, "random weights (seed 1)".to_string())
        }
    };
    let model = back::compile(&spec, &graph, &sha)?;
    let input = image_like_input(spec.height, spec.width, 2);
    let (median, range) = match (args.target.isa(), args.target.c_target()) {
        (Some(isa), _) => {
            let pool = pool(args.threads)?;
            let parallel = pool.as_ref().map(|p| p as &dyn ParallelFor);
            let mut runner = native::Runner::new(&model);
            let mut times = Vec::with_capacity(args.iters);
            for i in 0..args.iters + 2 {
                let start = Instant::now();
                runner
                    .run(&model, isa, parallel, &input.data)
                    .map_err(|e| Failure::new(format!("internal error in the compiled program: {e}")))?;
                if i >= 2 {
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                }
            }
            times.sort_by(f64::total_cmp);
            (times[times.len() / 2], format!(" (min {:.1}, max {:.1})", times[0], times[times.len() - 1]))
        }
        (None, Some(target)) => {
            let (_, median) = run_c(&model, target, args.threads, &input, args.iters)?;
            (median.ok_or_else(|| Failure::new("the C harness printed no timing"))?, String::new())
        }
        (None, None) => unreachable!("checked above"),
    };
    let gflops = 2.0 * model.macs as f64 / (median * 1e-3) / 1e9;
    println!(
        "{} {}x{} target {} threads {}: median {median:.1} ms{range} over {} runs, {gflops:.1} GFLOP/s, arena {} bytes",
        spec.model_name(),
        spec.height,
        spec.width,
        args.target.name(),
        args.threads,
        args.iters,
        model.arena_bytes
    );
    Ok(())
}
