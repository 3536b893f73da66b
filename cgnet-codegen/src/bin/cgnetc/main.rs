//! `cgnetc`: the cgnet compiler's command line.

mod failure;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cgnet_codegen::ir::{Graph, OutputKind};
use cgnet_codegen::report::InspectReport;
use cgnet_codegen::spec::{read_spec_file, ModelSpec};
use cgnet_codegen::{interp, passes, plan};
use cgnet_codegen::{lower, verify, Tensor};
use cgnet_runtime::{read_f32_tensor, write_tensors_atomically, OutputTensor, Weights};
use clap::{Parser, Subcommand, ValueEnum};
use failure::Failure;

/// Compiles CGNet segmentation models: inspect them, run them on a target.
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
    /// Print parameters, MACs per layer and every tensor's shape.
    Inspect(InspectArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Model spec (.json).
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
}

#[derive(clap::Args)]
struct InspectArgs {
    /// Model spec (.json).
    #[arg(long, value_name = "SPEC")]
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print the graph IR as text instead of the report.
    #[arg(long, value_enum)]
    ir: Option<IrStage>,
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
    /// Emitted portable C, compiled with `cc` and run.
    CScalar,
    /// Emitted C with AVX2 + FMA intrinsics.
    CAvx2,
    /// Emitted C with AArch64 NEON intrinsics, run under qemu-aarch64.
    CNeon,
    /// Emitted WGSL through the wgpu runtime shim.
    Gpu,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Inspect(args) => inspect(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprint!("{failure}");
            ExitCode::FAILURE
        }
    }
}

fn load_spec(path: &Path) -> Result<ModelSpec, Failure> {
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

/// Optimises a graph for the given outputs and plans its arena.
fn compile(
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

fn run(args: &RunArgs) -> Result<(), Failure> {
    let spec = load_spec(&args.model)?;
    let mut graph = build_graph(&spec)?;
    if !matches!(args.target, Target::Interp | Target::InterpPlanned) {
        let name = args.target.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
        return Err(Failure::new(format!(
            "target `{name}` is not available in this version of cgnetc (available: interp, interp-planned)"
        )));
    }
    if let Some(n) = args.stop_after_pass {
        if args.target != Target::InterpPlanned || n > passes::PIPELINE.len() {
            return Err(Failure::new(format!(
                "--stop-after-pass takes 0..={} and needs --target interp-planned",
                passes::PIPELINE.len()
            )));
        }
    }
    let weights = Weights::load(&args.weights, &graph.expected_weights())?;
    graph.bind(&weights);
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
    let outputs = match args.target {
        Target::InterpPlanned => {
            let (fused, _, plan) = compile(&graph, args.stop_after_pass, &OutputKind::ALL)?;
            interp::run_planned(&fused, &plan, &input)?
        }
        _ => interp::run(&graph, &input)?,
    };
    write_outputs(&args.out, &outputs)
}

fn write_outputs(path: &Path, outputs: &std::collections::BTreeMap<OutputKind, Tensor>) -> Result<(), Failure> {
    let labels: Vec<i32> = outputs[&OutputKind::Labels].data.iter().map(|v| *v as i32).collect();
    let shape4 = |t: &Tensor| vec![1, t.c, t.h, t.w];
    let (logits, scores) = (&outputs[&OutputKind::Logits], &outputs[&OutputKind::Scores]);
    let label_shape = vec![1, outputs[&OutputKind::Labels].h, outputs[&OutputKind::Labels].w];
    write_tensors_atomically(
        path,
        &[
            OutputTensor::F32 { name: "logits", shape: shape4(logits), data: &logits.data },
            OutputTensor::F32 { name: "scores", shape: shape4(scores), data: &scores.data },
            OutputTensor::I32 { name: "labels", shape: label_shape, data: &labels },
        ],
    )?;
    Ok(())
}

fn inspect(args: &InspectArgs) -> Result<(), Failure> {
    let spec = load_spec(&args.model)?;
    let graph = build_graph(&spec)?;
    let (fused, fusions, plan) = compile(&graph, None, INFERENCE_OUTPUTS)?;
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
