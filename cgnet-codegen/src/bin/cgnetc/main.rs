//! `cgnetc`: the cgnet compiler's command line.

mod failure;
mod gpu;
mod segment;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use cgnet_codegen::back::c::{self, CTarget};
use cgnet_codegen::back::{self, native, CompiledModel};
use cgnet_codegen::ir::{Graph, OutputKind};
use cgnet_codegen::report::InspectReport;
use cgnet_codegen::spec::{read_spec_file, ModelSpec};
use cgnet_codegen::stream::Streaming;
use cgnet_codegen::testing::{bind_random_weights, image_like_input};
use cgnet_codegen::{draw, interp, passes, plan};
use cgnet_codegen::{lower, verify, Tensor};
use cgnet_runtime::kernels::{Input, Isa, ParallelFor};
use cgnet_runtime::tensors::write_atomically;
use cgnet_runtime::{read_f32_tensor, write_tensors_atomically, OutputTensor, ThreadPool, Weights};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};
use failure::Failure;

/// Compile CGNet semantic-segmentation models to standalone C for mobile and embedded
/// SDKs, run them on an input, benchmark them, and inspect their layers and memory.
///
/// A model is a `.cgnet` description (the grammar of the `cgnet!` macro, e.g.
/// `models/camvid.cgnet`) or a JSON spec, plus `.safetensors` weights with the authors'
/// PyTorch state-dict keys (a `.cgnet` file may name its weights).
#[derive(Parser)]
#[command(name = "cgnetc", version, about, long_about, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Emit a standalone C project (NAME.h, NAME.c, or NAME_gpu.h/.c for c-webgpu; weights, CMakeLists.txt, README.md) or Rust module.
    Build(BuildArgs),
    /// Run a model on one input tensor and write its logits, scores and labels.
    Run(RunArgs),
    /// Time inference on a target: median milliseconds and GFLOP/s.
    Bench(BenchArgs),
    /// Print parameters, MACs per layer, the fusions applied and the arena plan.
    Inspect(InspectArgs),
    /// Segment pictures (PNG, JPEG): a label PNG and an overlay PNG per picture.
    Segment(SegmentArgs),
    /// Measure mIoU, per-class IoU and pixel accuracy over a labelled dataset.
    Eval(EvalArgs),
}

/// How `segment` and `eval` run the model: on the Rust kernels, one frame per worker thread.
#[derive(clap::Args)]
struct PictureRun {
    /// Weights (.safetensors); defaults to the file the description names.
    #[arg(long, value_name = "W.safetensors")]
    weights: Option<PathBuf>,
    /// Kernels to run on (default: the best this CPU supports).
    #[arg(long, value_parser = target_parser(PICTURE_TARGETS))]
    target: Option<Target>,
    /// Worker threads, each segmenting whole pictures with its own arena: a
    /// number, or `auto` / 0 for one per available core.
    #[arg(long, default_value = "auto", value_parser = parse_threads)]
    threads: usize,
}

/// Pictures of another size than the model's input are resized to it
/// (bilinear) and the labels resized back to the picture (nearest neighbour).
/// Pixels are normalised with the description's `mean` and `std`. Pictures
/// of more than 16 Mpx (4096 x 4096) are refused: scale them down first.
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
struct SegmentArgs {
    /// Model description: a `.cgnet` file (the `cgnet!` grammar) or a JSON spec.
    #[arg(long, value_name = "MODEL")]
    model: PathBuf,
    /// Pictures (8-bit RGB PNG or JPEG), or folders of them.
    #[arg(value_name = "IMAGE|DIR", required = true)]
    pictures: Vec<PathBuf>,
    /// Output folder (created if missing): STEM_labels.png (indexed colour: the pixel
    /// value is the class, shown in the description's colours) and STEM_overlay.png.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    run: PictureRun,
}

/// The dataset layout is CamVid's (SegNet): SPLIT/ holds the pictures and
/// SPLITannot/ a PNG of the same name per picture whose pixel values are class
/// indices (a value at or above the class count is void and not scored).
#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The dataset folder.
    #[arg(long, value_name = "DIR")]
    dataset: PathBuf,
    /// Which split to score.
    #[arg(long, default_value = "test")]
    split: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    run: PictureRun,
}

/// The model description, as the first argument or as `--model`.
#[derive(clap::Args)]
struct ModelArg {
    /// Model description: a `.cgnet` file (the `cgnet!` grammar) or a JSON spec.
    #[arg(value_name = "MODEL", required_unless_present = "model_option")]
    model: Option<PathBuf>,
    /// The model description, as an option (same as MODEL).
    #[arg(long = "model", id = "model_option", value_name = "MODEL", conflicts_with = "model")]
    model_option: Option<PathBuf>,
}

impl ModelArg {
    fn path(&self) -> &Path {
        self.model.as_deref().or(self.model_option.as_deref()).expect("clap requires one of the two")
    }
}

#[derive(clap::Args)]
struct BuildArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Weights (.safetensors, the authors' state-dict keys); defaults to the file the description names.
    #[arg(long, value_name = "W.safetensors")]
    weights: Option<PathBuf>,
    /// What to emit.
    #[arg(long, value_parser = target_parser(BUILD_TARGETS))]
    target: Target,
    /// Output folder (created if missing; existing files of the same names are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Symbol prefix (lower case); defaults to the description's name, else `cgnet`.
    #[arg(long)]
    name: Option<String>,
    /// C: write the weights as a binary file `NAME.weights` passed at run time, not a C array
    /// (`rust` always reads them from `NAME.weights`, compiled in with `include_bytes!`).
    #[arg(long)]
    weights_blob: bool,
}

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
struct RunArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Weights (.safetensors, the authors' state-dict keys; f32, f16 or bf16); defaults to the file the
    /// description names.
    #[arg(long, value_name = "W.safetensors")]
    weights: Option<PathBuf>,
    /// Input file holding `input`, f32 [1, 3, H, W] (NCHW, RGB, normalised as the weights expect).
    #[arg(long, value_name = "IN.safetensors")]
    input: PathBuf,
    /// Output file: `logits` f32 `[1,C,H/8,W/8]`, `scores` f32 `[1,C,H,W]`, `labels` i32 `[1,H,W]`.
    #[arg(long, value_name = "OUT.safetensors")]
    out: PathBuf,
    /// Where to run it (C targets are compiled once and cached; see CGNETC_CACHE_DIR below).
    #[arg(long, value_parser = target_parser(RUN_TARGETS), default_value = "interp")]
    target: Target,
    /// Run only the first N fusion passes (to bisect a wrong result; `interp-planned` only).
    #[arg(long, value_name = "N")]
    stop_after_pass: Option<usize>,
    /// Threads for the compiled CPU targets (each step is cut into chunks of rows that
    /// they share): a number, or `auto` / 0 for one per available core. The
    /// interpreters and the GPU targets refuse any count but 1.
    #[arg(long, default_value = "1", value_parser = parse_threads)]
    threads: usize,
}

#[derive(clap::Args)]
struct InspectArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print the graph IR as text instead of the report.
    #[arg(long, value_enum)]
    ir: Option<IrStage>,
    /// Also draw the arena plan as SVG: a rectangle per buffer (schedule step
    /// across, arena offset down), the arena size and its lower bound marked.
    #[arg(long, value_name = "FILE.svg")]
    plan_svg: Option<PathBuf>,
    /// Also write the fused graph as Graphviz DOT (`dot -Tsvg FILE.dot`).
    #[arg(long, value_name = "FILE.dot")]
    graph_dot: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Weights; defaults to the file the description names, else random weights with realistic scales.
    #[arg(long, value_name = "W.safetensors")]
    weights: Option<PathBuf>,
    /// A compiled target.
    #[arg(long, value_parser = target_parser(BENCH_TARGETS), default_value = "rust-avx2")]
    target: Target,
    /// Threads (each step is cut into chunks of rows that they share): a number, or
    /// `auto` / 0 for one per available core. A comma-separated list (e.g.
    /// `1,2,3,4,8`) benchmarks each in turn: a thread sweep.
    #[arg(long, default_value = "1", value_parser = parse_threads, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Keep K cores busy while measuring (K threads that spin), as a camera
    /// pipeline, a UI or another process would: how the threads hold up under load.
    #[arg(long, value_name = "K", default_value_t = 0)]
    busy_cores: usize,
    /// Timed iterations (after 2 warm-up runs).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Also time every step (rust-* targets, the first thread count): time and
    /// GFLOP/s per kind of step or group of steps, and the measured FMA ceiling
    /// of the kernels' instruction set (a register-only loop), so that the run
    /// reads as a share of it.
    #[arg(long)]
    profile: bool,
    /// With --profile, also list every group of steps in program order: its
    /// steps (`S4..S6` as in the generated code; a streamed region's bands as
    /// `S1 rows 0..20`), median time and GFLOP/s.
    #[arg(long, requires = "profile")]
    profile_groups: bool,
    /// Run every step on its own, not in the compiler's groups of steps that
    /// share one pass over each chunk of rows: what the groups gain.
    #[arg(long)]
    ungrouped: bool,
    /// Compile without streamed regions (every tensor whole, as on the GPU):
    /// what streaming costs or gains in time, against its smaller arena.
    #[arg(long)]
    unstreamed: bool,
}

/// `--threads`: a count, or `auto` / 0 for the available cores.
fn parse_threads(text: &str) -> Result<usize, String> {
    let n = match text.trim() {
        "auto" => 0,
        n => n.parse::<usize>().map_err(|_| format!("`{text}` is not a thread count (a number, or `auto`)"))?,
    };
    Ok(if n == 0 { cgnet_runtime::pool::available_threads() } else { n })
}

/// `--busy-cores K`: K threads that spin until dropped, standing in for the
/// other work of a busy machine.
struct BusyCores {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    spinners: Vec<std::thread::JoinHandle<()>>,
}

impl BusyCores {
    fn start(k: usize) -> Result<Self, Failure> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut busy = Self { stop, spinners: Vec::with_capacity(k) };
        for i in 0..k {
            let stop = std::sync::Arc::clone(&busy.stop);
            let spinner = std::thread::Builder::new()
                .name(format!("busy-core-{i}"))
                .spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                })
                .map_err(|e| Failure::new(format!("cannot start a busy thread: {e}")))?;
            busy.spinners.push(spinner);
        }
        Ok(busy)
    }
}

impl Drop for BusyCores {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for spinner in self.spinners.drain(..) {
            let _ = spinner.join();
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IrStage {
    /// As lowered from the spec, layer by layer like the authors' model.
    Unfused,
    /// After every fusion pass.
    Fused,
}

/// Every place a model can run; each subcommand accepts (and lists) only its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Interp,
    InterpPlanned,
    RustScalar,
    RustAvx2,
    RustAvx512,
    CScalar,
    CAvx2,
    CAvx512,
    CNeon,
    CWebGpu,
    Rust,
    Gpu,
}

const BUILD_TARGETS: &[Target] =
    &[Target::CScalar, Target::CAvx2, Target::CAvx512, Target::CNeon, Target::CWebGpu, Target::Rust];
const RUN_TARGETS: &[Target] = &[
    Target::Interp,
    Target::InterpPlanned,
    Target::RustScalar,
    Target::RustAvx2,
    Target::RustAvx512,
    Target::CScalar,
    Target::CAvx2,
    Target::CAvx512,
    Target::CNeon,
    Target::CWebGpu,
    Target::Gpu,
];
const PICTURE_TARGETS: &[Target] = &[Target::RustScalar, Target::RustAvx2, Target::RustAvx512];
const BENCH_TARGETS: &[Target] = &[
    Target::RustScalar,
    Target::RustAvx2,
    Target::RustAvx512,
    Target::CScalar,
    Target::CAvx2,
    Target::CAvx512,
    Target::CNeon,
    Target::CWebGpu,
    Target::Gpu,
];

/// A `--target` parser that accepts and lists exactly `allowed`.
fn target_parser(allowed: &'static [Target]) -> impl TypedValueParser<Value = Target> {
    PossibleValuesParser::new(allowed.iter().map(|t| PossibleValue::new(t.name()).help(t.help())))
        .map(|name| *allowed.iter().find(|t| t.name() == name).expect("parsed names are targets"))
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Interp => "interp",
            Target::InterpPlanned => "interp-planned",
            Target::RustScalar => "rust-scalar",
            Target::RustAvx2 => "rust-avx2",
            Target::RustAvx512 => "rust-avx512",
            Target::CScalar => "c-scalar",
            Target::CAvx2 => "c-avx2",
            Target::CAvx512 => "c-avx512",
            Target::CNeon => "c-neon",
            Target::CWebGpu => "c-webgpu",
            Target::Rust => "rust",
            Target::Gpu => "gpu",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Target::Interp => "The reference interpreter on the unfused graph (the numeric oracle)",
            Target::InterpPlanned => "The interpreter on the fused graph, every tensor at its planned arena offset",
            Target::RustScalar => "The compiled program on cgnet-runtime's portable kernels",
            Target::RustAvx2 => "The compiled program on cgnet-runtime's AVX2 + FMA kernels",
            Target::RustAvx512 => {
                "The compiled program on cgnet-runtime's AVX-512F kernels (16 lanes; bit-identical to rust-avx2)"
            }
            Target::CScalar => "Portable C99",
            Target::CAvx2 => "C with AVX2 + FMA intrinsics (x86-64)",
            Target::CAvx512 => "C with AVX-512F intrinsics (x86-64; 16 lanes, bit-identical to c-avx2)",
            Target::CNeon => "C with NEON intrinsics (AArch64; run here under qemu-aarch64)",
            Target::CWebGpu => {
                "The WGSL kernels with a C host over webgpu.h (NAME_gpu.h/.c; run here with wgpu-native, see CGNET_WGPU_NATIVE_DIR)"
            }
            Target::Rust => "A standalone Rust module (NAME.rs + NAME.weights) that needs only cgnet-runtime",
            Target::Gpu => "WGSL compute kernels through wgpu (Vulkan, Metal, D3D12; lavapipe without a GPU)",
        }
    }

    fn c_target(self) -> Option<CTarget> {
        match self {
            Target::CScalar => Some(CTarget::Scalar),
            Target::CAvx2 => Some(CTarget::Avx2),
            Target::CAvx512 => Some(CTarget::Avx512),
            Target::CNeon => Some(CTarget::Neon),
            Target::CWebGpu => Some(CTarget::WebGpu),
            _ => None,
        }
    }

    /// Whether the compiled program streams regions band by band: the CPU
    /// targets do; the GPU targets dispatch whole steps.
    fn streaming(self) -> Streaming {
        match self {
            Target::Gpu | Target::CWebGpu => Streaming::Off,
            _ => Streaming::Auto,
        }
    }

    /// Whether `--threads` means anything here: the interpreters are serial,
    /// and the GPU targets schedule their own work.
    fn takes_threads(self) -> bool {
        !matches!(self, Target::Interp | Target::InterpPlanned | Target::Gpu | Target::CWebGpu)
    }

    /// The error for `--threads` other than 1 on a target that does not take it.
    fn check_threads(self, threads: &[usize]) -> Result<(), Failure> {
        if self.takes_threads() || threads.iter().all(|&t| t == 1) {
            Ok(())
        } else {
            Err(Failure::new(format!("--threads does not apply to --target {}", self.name())))
        }
    }

    fn isa(self) -> Option<Isa> {
        match self {
            Target::RustScalar => Some(Isa::Scalar),
            Target::RustAvx2 => Some(Isa::Avx2),
            Target::RustAvx512 => Some(Isa::Avx512),
            _ => None,
        }
    }
}

/// Shown after the options of every `--help`.
const AFTER_HELP: &str = "Environment:\n  CGNETC_CACHE_DIR      where `run` and `bench` keep compiled C (default: $XDG_CACHE_HOME/cgnetc or ~/.cache/cgnetc)\n  CC                    the C compiler for c-scalar, c-avx2 and c-webgpu (default: cc)\n  CGNET_WGPU_NATIVE_DIR wgpu-native (library, webgpu.h, wgpu.h) for `run`/`bench --target c-webgpu` (default: CGNETC_CACHE_DIR/wgpu-native)";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Bench(args) => bench(&args),
        Command::Build(args) => build(&args),
        Command::Segment(args) => segment_pictures(&args),
        Command::Eval(args) => evaluate(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprint!("{failure}");
            ExitCode::FAILURE
        }
    }
}

/// A model description and the weights file it names, if any.
struct Description {
    spec: ModelSpec,
    /// `weights:` of a `.cgnet` file, relative to the file's folder.
    weights: Option<PathBuf>,
}

/// Reads a model description: a `.cgnet` file (the `cgnet!` grammar) or a JSON spec.
fn read_model(path: &Path) -> Result<Description, Failure> {
    if path.extension().is_some_and(|e| e == "cgnet") {
        let decl = cgnet_codegen::syntax::parse_file(path).map_err(Failure::new)?;
        let folder = path.parent().unwrap_or(Path::new(""));
        let weights = decl.weights.map(|w| folder.join(w.value()));
        return Ok(Description { spec: decl.spec, weights });
    }
    Ok(Description { spec: read_spec_file(path)?, weights: None })
}

/// `--weights` if given, else the file the description names.
fn weights_for(model: &Path, description: &Description, explicit: Option<&Path>) -> Result<PathBuf, Failure> {
    explicit.map(Path::to_path_buf).or_else(|| description.weights.clone()).ok_or_else(|| {
        Failure::new(format!(
            "no weights: {} names none (`weights: \"...\"` in a .cgnet file); pass --weights W.safetensors",
            model.display()
        ))
    })
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

/// Reads the description and its weights (`--weights` overrides the file it names);
/// returns the bound graph and the weights' SHA-256.
fn load_model(model: &Path, weights: Option<&Path>) -> Result<(ModelSpec, Graph, String), Failure> {
    let description = read_model(model)?;
    let weights = weights_for(model, &description, weights)?;
    let spec = description.spec;
    let mut graph = build_graph(&spec)?;
    let loaded = Weights::load(&weights, &graph.expected_weights())?;
    graph.bind(&loaded);
    let bytes = std::fs::read(&weights).map_err(|e| Failure::new(format!("cannot read {}: {e}", weights.display())))?;
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
    if threads <= 1 {
        return Ok(None);
    }
    ThreadPool::new(threads).map(Some).map_err(|e| Failure::new(format!("cannot start {threads} threads: {e}")))
}

/// An error unless this CPU can run the kernels of `isa`.
fn supported(isa: Isa) -> Result<(), Failure> {
    if isa.is_supported() {
        Ok(())
    } else {
        Err(Failure::new(format!("this CPU does not support the {isa:?} kernels")))
    }
}

fn run_compiled(model: &CompiledModel, isa: Isa, threads: usize, input: &Tensor) -> Result<Results, Failure> {
    supported(isa)?;
    let pool = pool(threads)?;
    let out = native::execute(model, isa, pool.as_ref().map(|p| p as &dyn ParallelFor), Input::Floats(&input.data))
        .map_err(|e| Failure::new(format!("internal error in the compiled program: {e}")))?;
    let (c, h, w) = (model.classes, model.height, model.width);
    Ok(Results {
        logits: Tensor { c, h: model.logits.h, w: model.logits.w, data: out.logits },
        scores: Tensor { c, h, w, data: out.scores },
        labels: out.labels.iter().map(|l| i32::from(*l)).collect(),
    })
}

/// Runs the emitted C through the harness, compiled once per distinct program
/// (see `toolchain::build_cached`); `iters > 0` also returns the median ms of that
/// many `run` calls. Also returns the seconds the harness took.
fn run_c(
    model: &CompiledModel,
    target: CTarget,
    threads: usize,
    input: &Tensor,
    iters: usize,
) -> Result<(Results, Option<f64>, f64), Failure> {
    // x86 C runs natively: a missing extension would stop it with an illegal instruction.
    match target {
        CTarget::Avx2 => supported(Isa::Avx2)?,
        CTarget::Avx512 => supported(Isa::Avx512).map_err(|_| {
            Failure::new("this CPU has no AVX-512F: c-avx512 can be built here (`cgnetc build`) but not run")
        })?,
        CTarget::Scalar | CTarget::Neon | CTarget::WebGpu => {}
    }
    let temp = |what: &str| {
        tempfile::Builder::new()
            .prefix("cgnetc-")
            .tempdir()
            .map_err(|e| Failure::new(format!("cannot create a temporary folder for {what}: {e}")))
    };
    let work = temp("the harness's files")?;
    let options = c::Options { target, weights_blob: false };
    let started = Instant::now();
    let (exe, _uncached) = match c::toolchain::default_cache_dir() {
        Some(cache) => {
            let cached = c::toolchain::build_cached(model, &options, &cache)?;
            if !cached.hit {
                eprintln!(
                    "compiled {} for {} in {:.1} s (cached in {})",
                    model.name,
                    target.name(),
                    started.elapsed().as_secs_f64(),
                    cached.exe.parent().unwrap_or(&cache).display()
                );
            }
            (cached.exe, None)
        }
        None => {
            let dir = temp("the build")?;
            (c::toolchain::build(model, &options, dir.path())?, Some(dir))
        }
    };
    let started = Instant::now();
    let out = c::toolchain::run(target, &exe, work.path(), &input.data, threads, iters)?;
    let seconds = started.elapsed().as_secs_f64();
    let (c, h, w) = (model.classes, model.height, model.width);
    let results = Results {
        logits: Tensor { c, h: model.logits.h, w: model.logits.w, data: out.logits },
        scores: Tensor { c, h, w, data: out.scores },
        labels: out.labels.iter().map(|l| i32::from(*l)).collect(),
    };
    Ok((results, out.median_ms, seconds))
}

fn build(args: &BuildArgs) -> Result<(), Failure> {
    let (mut spec, graph, sha) = load_model(args.model.path(), args.weights.as_deref())?;
    if let Some(name) = &args.name {
        spec.name = Some(name.clone());
        spec.validate()?;
    }
    let model = back::compile_streaming(&spec, &graph, &sha, args.target.streaming())?;
    let files = match args.target.c_target() {
        Some(target) => c::emit(&model, &c::Options { target, weights_blob: args.weights_blob })
            .map_err(|e| Failure::new(e.to_string()))?,
        None => back::rust::standalone(&model),
    };
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
    args.target.check_threads(&[args.threads])?;
    let (spec, graph, sha) = load_model(args.model.path(), args.weights.as_deref())?;
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
    let started = Instant::now();
    let mut seconds = None;
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
        Target::Gpu => gpu::run(&back::compile_streaming(&spec, &graph, &sha, Streaming::Off)?, &input)?,
        target => {
            let model = back::compile_streaming(&spec, &graph, &sha, target.streaming())?;
            match target.c_target() {
                Some(c) => {
                    let (results, _, harness_seconds) = run_c(&model, c, args.threads, &input, 0)?;
                    seconds = Some(harness_seconds);
                    results
                }
                None => {
                    run_compiled(&model, target.isa().expect("compiled targets have an ISA"), args.threads, &input)?
                }
            }
        }
    };
    let seconds = seconds.unwrap_or_else(|| started.elapsed().as_secs_f64());
    write_results(&args.out, &results)?;
    let (l, sc) = (&results.logits, &results.scores);
    println!(
        "wrote {}: logits [1, {}, {}, {}], scores [1, {}, {}, {}], labels [1, {}, {}]; {} on {} thread(s) took {:.1} ms",
        args.out.display(),
        l.c,
        l.h,
        l.w,
        sc.c,
        sc.h,
        sc.w,
        sc.h,
        sc.w,
        args.target.name(),
        args.threads,
        seconds * 1e3
    );
    Ok(())
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

/// The model of `segment` / `eval`, compiled for the kernels asked for.
fn segmenter(model: &Path, run: &PictureRun) -> Result<segment::Segmenter, Failure> {
    let (spec, graph, sha) = load_model(model, run.weights.as_deref())?;
    let compiled = back::compile(&spec, &graph, &sha)?;
    let isa = run.target.and_then(Target::isa).unwrap_or_else(Isa::detect);
    segment::Segmenter::new(spec, compiled, isa)
}

fn segment_pictures(args: &SegmentArgs) -> Result<(), Failure> {
    segment::segment(&segmenter(&args.model, &args.run)?, &args.pictures, &args.out, args.run.threads)
}

fn evaluate(args: &EvalArgs) -> Result<(), Failure> {
    let evaluation =
        segment::eval(&segmenter(args.model.path(), &args.run)?, &args.dataset, &args.split, args.run.threads)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation).map_err(|e| Failure::new(e.to_string()))?);
    } else {
        print!("{}", evaluation.to_text());
    }
    Ok(())
}

/// Writes a whole text file or nothing (a temporary name, then a rename).
fn write_text(path: &Path, text: &str) -> Result<(), Failure> {
    write_atomically(path, text.as_bytes()).map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))
}

fn inspect(args: &InspectArgs) -> Result<(), Failure> {
    let spec = read_model(args.model.path())?.spec;
    let graph = build_graph(&spec)?;
    // The layout does not depend on the weights' values: compile with zeros.
    let mut zeros = graph.clone();
    back::program::bind_zero_weights(&mut zeros);
    let compiled = back::program::compile_with_report(&spec, &zeros, "none")?;
    let title = format!("{} {}x{}", spec.model_name(), spec.height, spec.width);
    if let Some(path) = &args.plan_svg {
        write_text(path, &draw::plan_svg(&compiled.plan, &title))?;
    }
    if let Some(path) = &args.graph_dot {
        write_text(path, &draw::graph_dot(&compiled.fused, &title))?;
    }
    if let Some(which) = args.ir {
        print!("{}", if which == IrStage::Fused { &compiled.fused } else { &graph });
        return Ok(());
    }
    let report = InspectReport::new(&spec, &graph, compiled);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Failure::new(e.to_string()))?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn bench(args: &BenchArgs) -> Result<(), Failure> {
    if args.iters == 0 {
        return Err(Failure::new("--iters must be at least 1"));
    }
    let model_path = args.model.path();
    let description = read_model(model_path)?;
    let (spec, graph, sha) = if args.weights.is_some() || description.weights.is_some() {
        load_model(model_path, args.weights.as_deref())?
    } else {
        let spec = description.spec;
        let mut graph = build_graph(&spec)?;
        bind_random_weights(&mut graph, 1);
        (spec, graph, "random weights (seed 1)".to_string())
    };
    let streaming = if args.unstreamed { Streaming::Off } else { args.target.streaming() };
    let mut model = back::compile_streaming(&spec, &graph, &sha, streaming)?;
    if args.ungrouped {
        // The CPU targets are the ones that take threads.
        if !args.target.takes_threads() {
            let target = args.target.name();
            return Err(Failure::new(format!(
                "--ungrouped applies to the CPU targets (rust-*, c-*), not {target}: the GPU runs every step alone"
            )));
        }
        let calls = model.calls.iter().flat_map(|call| {
            call.steps.clone().map(|i| back::program::Call { steps: i..i + 1, rows: call.rows.clone() })
        });
        model.calls = calls.collect();
    }
    let input = image_like_input(spec.height, spec.width, 2);
    if args.profile && args.target.isa().is_none() {
        return Err(Failure::new(format!("--profile applies to the rust-* targets, not {}", args.target.name())));
    }
    let busy = BusyCores::start(args.busy_cores)?;
    let load = match args.busy_cores {
        0 => String::new(),
        k => format!(", {k} busy core{}", if k == 1 { "" } else { "s" }),
    };
    // Per thread count: the sorted times of the timed runs, in ms.
    let times: Vec<Vec<f64>> = match (args.target.isa(), args.target.c_target()) {
        _ if args.target == Target::Gpu => {
            args.target.check_threads(&args.threads)?;
            vec![gpu::bench(&model, &input, args.iters)?]
        }
        (_, Some(CTarget::WebGpu)) => {
            args.target.check_threads(&args.threads)?;
            let (_, median, _) = run_c(&model, CTarget::WebGpu, 1, &input, args.iters)?;
            vec![vec![median.ok_or_else(|| Failure::new("the C harness printed no timing"))?]]
        }
        (Some(isa), _) => {
            supported(isa)?;
            // Round-robin over the thread counts, so that a noisy machine slows
            // them alike and their ratios hold.
            let pools = args.threads.iter().map(|&t| pool(t)).collect::<Result<Vec<_>, _>>()?;
            let mut runner = native::Runner::new(&model);
            let mut times = vec![Vec::with_capacity(args.iters); pools.len()];
            for i in 0..args.iters + 2 {
                for (pool, times) in pools.iter().zip(&mut times) {
                    let start = Instant::now();
                    runner
                        .run(&model, isa, pool.as_ref().map(|p| p as &dyn ParallelFor), Input::Floats(&input.data))
                        .map_err(|e| Failure::new(format!("internal error in the compiled program: {e}")))?;
                    if i >= 2 {
                        times.push(start.elapsed().as_secs_f64() * 1e3);
                    }
                }
            }
            times
        }
        (None, Some(target)) => {
            // The harness times its own runs and prints their median. Rounds of a
            // few runs per thread count, round-robin, so that a noisy machine
            // slows them alike; the median of the rounds' medians is reported.
            let rounds = args.iters.min(5);
            let mut times = vec![Vec::with_capacity(rounds); args.threads.len()];
            for round in 0..rounds {
                let iters = args.iters / rounds + usize::from(round < args.iters % rounds);
                for (&threads, times) in args.threads.iter().zip(&mut times) {
                    let (_, median, _) = run_c(&model, target, threads, &input, iters)?;
                    times.push(median.ok_or_else(|| Failure::new("the C harness printed no timing"))?);
                }
            }
            times
        }
        (None, None) => unreachable!("bench accepts only compiled targets"),
    };
    let mut first: Option<(usize, f64)> = None;
    for (&threads, mut times) in args.threads.iter().zip(times) {
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let range = match (times.len(), args.target.c_target()) {
            (1, _) => String::new(),
            (n, None) => format!(" (min {:.1}, max {:.1})", times[0], times[n - 1]),
            (n, Some(_)) => format!(" (of {n} rounds' medians: min {:.1}, max {:.1})", times[0], times[n - 1]),
        };
        let gflops = 2.0 * model.macs as f64 / (median * 1e-3) / 1e9;
        let (base_threads, base) = *first.get_or_insert((threads, median));
        let ratio = match args.threads.len() {
            1 => String::new(),
            _ => format!(", {:.2}x the {base_threads}-thread time", median / base),
        };
        println!(
            "{} {}x{} target {} threads {threads}{load}: median {median:.1} ms{range} over {} runs, {gflops:.1} GFLOP/s, arena {} bytes{ratio}",
            spec.model_name(),
            spec.height,
            spec.width,
            args.target.name(),
            args.iters,
            model.arena_bytes
        );
    }
    if let (true, Some(isa), Some((threads, median))) = (args.profile, args.target.isa(), first) {
        print_profile(&model, isa, threads, &input, (args.iters, args.profile_groups), median)?;
    }
    drop(busy);
    Ok(())
}

/// `bench --profile`: every group of steps timed (the median of `iters` runs
/// per group), summed per kind of group (the kinds of its steps), with GFLOP/s
/// where the steps do arithmetic; then
/// the FMA ceiling of the kernels' instruction set, and the whole run (median
/// `whole_ms`) as a share of it. With `each_group`, first every group in
/// program order.
fn print_profile(
    model: &CompiledModel,
    isa: Isa,
    threads: usize,
    input: &Tensor,
    (iters, each_group): (usize, bool),
    whole_ms: f64,
) -> Result<(), Failure> {
    let pool = pool(threads)?;
    let mut runner = native::Runner::new(model);
    let groups = model.calls.len() + 1;
    let mut runs = vec![Vec::with_capacity(iters); groups];
    let mut seconds = vec![0.0; groups];
    for i in 0..iters + 1 {
        runner
            .run_profiled(
                model,
                isa,
                pool.as_ref().map(|p| p as &dyn ParallelFor),
                Input::Floats(&input.data),
                &mut seconds,
            )
            .map_err(|e| Failure::new(format!("internal error in the compiled program: {e}")))?;
        if i > 0 {
            runs.iter_mut().zip(&seconds).for_each(|(run, s)| run.push(*s));
        }
    }
    // (kind, groups, seconds, multiply-adds), in order of first appearance; a
    // group's kind names its steps' kinds.
    let mut kinds: Vec<(String, usize, f64, u64)> = Vec::new();
    let gflops =
        |macs: u64, sec: f64| if macs > 0 { format!("{:.1}", 2.0 * macs as f64 / sec / 1e9) } else { "-".into() };
    if each_group {
        println!("every group of steps in program order (median of {iters} runs each):");
        println!("  {:<20} {:>9} {:>9}  kinds", "steps", "ms", "GFLOP/s");
    }
    let tail = back::program::Call { steps: model.steps.len()..model.steps.len() + 1, rows: 0..1 };
    let calls = model.calls.iter().cloned().chain([tail]);
    let groups = model.called_steps().map(|(group, _)| group).chain([std::slice::from_ref(&model.tails.run)]);
    for ((group, mut run), call) in groups.zip(runs).zip(calls) {
        let range = call.steps.clone();
        run.sort_by(f64::total_cmp);
        let kind = group.iter().map(|s| s.kind()).collect::<Vec<_>>().join(" + ");
        // A band of a streamed region does its rows' share of the steps' work.
        let share =
            |s: &cgnet_runtime::program::Step| s.macs() * call.rows.len() as u64 / s.rows().unwrap_or(1).max(1) as u64;
        let (median, macs) = (run[run.len() / 2], group.iter().map(share).sum::<u64>());
        if each_group {
            let steps = if range.len() == 1 {
                format!("S{}", range.start)
            } else {
                format!("S{}..S{}", range.start, range.end - 1)
            };
            let steps = if range.start == model.steps.len() {
                "tail".to_string()
            } else if !call.is_whole(&model.steps) {
                // A band of a streamed region.
                format!("{steps} rows {}..{}", call.rows.start, call.rows.end)
            } else {
                steps
            };
            println!("  {steps:<20} {:>9.3} {:>9}  {kind}", median * 1e3, gflops(macs, median));
        }
        match kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => {
                k.1 += 1;
                k.2 += median;
                k.3 += macs;
            }
            None => kinds.push((kind, 1, median, macs)),
        }
    }
    kinds.sort_by(|a, b| b.2.total_cmp(&a.2));
    let total: f64 = kinds.iter().map(|k| k.2).sum();
    println!(
        "per kind of step or group of steps ({threads} thread{}, median of {iters} runs each):",
        if threads == 1 { "" } else { "s" }
    );
    let width = kinds.iter().map(|k| k.0.len()).max().unwrap_or(0).max(4);
    println!("  {:<width$} {:>5} {:>9} {:>7} {:>9}", "kind", "count", "ms", "share", "GFLOP/s");
    for (kind, count, sec, macs) in &kinds {
        println!(
            "  {kind:<width$} {count:>5} {:>9.2} {:>6.1}% {:>9}",
            sec * 1e3,
            100.0 * sec / total,
            gflops(*macs, *sec)
        );
    }
    let peak = cgnet_runtime::kernels::fma_peak_gflops(isa, 20)
        .map_err(|e| Failure::new(format!("cannot measure the FMA peak: {e}")))?;
    let reached = 2.0 * model.macs as f64 / (whole_ms * 1e-3) / 1e9;
    println!(
        "FMA peak of the {isa:?} kernels, one core (register-only loop of independent multiply-adds): {peak:.1} GFLOP/s; \
         the whole run at {reached:.1} GFLOP/s is {:.0} % of {threads} x that",
        100.0 * reached / (peak * threads as f64)
    );
    let best = Isa::detect();
    if best != isa {
        let wider = cgnet_runtime::kernels::fma_peak_gflops(best, 20)
            .map_err(|e| Failure::new(format!("cannot measure the FMA peak: {e}")))?;
        println!("FMA peak of this CPU's best variant, {best:?}, one core: {wider:.1} GFLOP/s");
    }
    Ok(())
}
