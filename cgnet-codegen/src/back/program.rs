//! Fused graph + plan -> a `CompiledModel`: the kernel steps of one inference
//! (every view and weight offset a constant), the packed weights, and the
//! arena size. Shared by every backend; the Rust and C emitters only print it.
//!
//! The body computes the logits into the arena; three tail steps finish an
//! inference ([`Tails`]): copy the logits out (`run`), upsample them
//! (`scores`), or upsample + argmax them (`segment`), so the three entry
//! points share one body and one arena.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use cgnet_runtime::kernels::check_group;
use cgnet_runtime::program::{
    self as p, Act, Epilogue, FieldValue, Mem, Normalisation, Step, View, ALL_ROWS, MAX_GROUP,
};
use cgnet_runtime::recipe::{FileTensor, Layout, Placement, Recipe};
use sha2::{Digest, Sha256};

use crate::ir::{Derivation, EpilogueStep, Graph, NodeId, Op, Origin, OutputKind, ParamId};
use crate::spec::ModelSpec;
use crate::stream::{Region, Streaming};
use crate::{passes, plan};

/// Everything a backend needs to emit one model.
#[derive(Clone, Debug)]
pub struct CompiledModel {
    pub name: String,
    pub spec: ModelSpec,
    pub weights_sha256: String,
    pub steps: Vec<Step>,
    /// How the CPU backends run `steps`, in order: each call runs output rows of
    /// consecutive steps chunk by chunk as one group (`Exec::steps_rows`,
    /// `cg_exec_group`; see [`groups`]). Outside streamed regions a call runs
    /// every row of its steps and the calls cover the steps once; inside one,
    /// a region's steps are called band by band ([`crate::stream`]). The GPU
    /// runs the steps one by one, whole (it compiles without streaming).
    pub calls: Vec<Call>,
    pub weights: Vec<f32>,
    /// How `weights` is made from a weight file, for loading weights at run time.
    pub recipe: PackingRecipe,
    /// Bytes of the arena: the plan plus scratch for F_glo.
    pub arena_bytes: usize,
    /// Where the body leaves the logits (arena, NHWC).
    pub logits: View,
    /// The step that finishes each entry point after the body.
    pub tails: Tails,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub parameters: usize,
    pub macs: u64,
}

impl CompiledModel {
    /// How the 8-bit entry points normalise a picture (the description's `mean` / `std`).
    pub fn normalisation(&self) -> Normalisation {
        let (mean, std) = self.spec.normalisation();
        Normalisation::new(mean, std)
    }

    /// The steps and output rows of each call, in order.
    pub fn called_steps(&self) -> impl Iterator<Item = (&[Step], Range<usize>)> {
        self.calls.iter().map(|call| (&self.steps[call.steps.clone()], call.rows.clone()))
    }

    /// Whether some call runs a band of its steps rather than all their rows
    /// (the program has streamed regions).
    pub fn is_streamed(&self) -> bool {
        self.calls.iter().any(|call| !call.is_whole(&self.steps))
    }
}

/// One call of the CPU backends: output rows `rows` of the steps `steps`, run
/// chunk by chunk as one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub steps: Range<usize>,
    pub rows: Range<usize>,
}

impl Call {
    /// Whether the call runs every row of its steps (of the program's `steps`),
    /// not one band of a streamed region.
    pub fn is_whole(&self, steps: &[Step]) -> bool {
        self.rows == (0..steps[self.steps.start].rows().unwrap_or(1))
    }
}

/// Consecutive steps that can run chunk by chunk as one group
/// ([`check_group`], for the float input and for a picture), taken greedily:
/// a group grows while the next step can join it, up to [`MAX_GROUP`] steps
/// (the calls of [`grouped`] for every row of every step).
/// In CGNet these are a block's excitation with the next 1x1 convolution that
/// reads its result, and a
/// depthwise pair with what reads its output row by row (the channel sums of
/// F_glo, or the 1x1 reduction of a down block and its channel sums): one
/// hand-off between threads instead of two or three, and each chunk read back
/// from the cache of the core that wrote it.
pub fn groups(steps: &[Step]) -> Vec<Range<usize>> {
    let whole = (0..steps.len()).map(|i| (i, 0..steps[i].rows().unwrap_or(1)));
    grouped(steps, whole).into_iter().map(|call| call.steps).collect()
}

/// Calls of `units` (a step and the output rows to run of it, in program
/// order), consecutive units merged into groups as [`groups`] does when they
/// are consecutive steps that run the same rows.
pub fn grouped(steps: &[Step], units: impl IntoIterator<Item = (usize, Range<usize>)>) -> Vec<Call> {
    let joins = |group: &[Step]| {
        let picture: Vec<Step> = group.iter().map(Step::picture_form).collect();
        group.len() <= MAX_GROUP && check_group(group).is_ok() && check_group(&picture).is_ok()
    };
    let mut calls: Vec<Call> = Vec::new();
    for (i, rows) in units {
        match calls.last_mut() {
            Some(last) if last.steps.end == i && last.rows == rows && joins(&steps[last.steps.start..=i]) => {
                last.steps.end = i + 1
            }
            _ => calls.push(Call { steps: i..i + 1, rows }),
        }
    }
    calls
}

/// The calls of a program: each node's steps in node order, whole, except in
/// streamed regions, whose nodes' steps run band by band over the rows the
/// region's schedule gives them.
fn program_calls(steps: &[Step], node_steps: &[Range<usize>], regions: &[Region]) -> Vec<Call> {
    let mut units: Vec<(usize, Range<usize>)> = Vec::new();
    let mut node = 0;
    while node < node_steps.len() {
        match regions.iter().find(|r| r.nodes.start == node) {
            Some(region) => {
                for (id, rows) in region.bands.iter().flatten() {
                    units.extend(node_steps[id.index()].clone().map(|s| (s, rows.clone())));
                }
                node = region.nodes.end;
            }
            None => {
                units.extend(node_steps[node].clone().map(|s| (s, 0..steps[s].rows().unwrap_or(1))));
                node += 1;
            }
        }
    }
    grouped(steps, units)
}

/// The last step of each entry point: the body leaves the logits in the arena;
/// `run` copies them out (NCHW), `scores` upsamples them, `segment` upsamples
/// them and takes the argmax. All three share the body and the arena.
#[derive(Clone, Copy, Debug)]
pub struct Tails {
    pub run: Step,
    pub scores: Step,
    pub segment: Step,
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Verify(#[from] crate::ir::VerifyError),
    #[error("node {node} ({name}): {what} is not supported by the backends")]
    Unsupported { node: NodeId, name: String, what: String },
    #[error("step {0} reads the input but cannot read an 8-bit picture (only convolutions and pools can)")]
    PictureReader(usize),
    #[error("parameter `{0}` has no value: bind weights before compiling")]
    Unbound(String),
    #[error("packed weight {index} is {value} after folding BatchNorm into the convolutions: the weights or running statistics are too large for f32")]
    NonFinite { index: usize, value: f32 },
}

/// A compiled model with what the compiler decided on the way: the fused graph,
/// the rewrites of each pass and the buffer plan (what `cgnetc inspect` reports).
pub struct Compilation {
    pub model: CompiledModel,
    pub fused: Graph,
    pub fusions: Vec<passes::Applied>,
    pub plan: plan::Plan,
}

/// Compiles an unfused graph with bound weights for the CPU targets (streamed
/// regions where they lower the arena's peak, [`Streaming::Auto`]).
/// `weights_sha256` names the weight file in emitted headers.
pub fn compile(spec: &ModelSpec, graph: &Graph, weights_sha256: &str) -> Result<CompiledModel, CompileError> {
    compile_with_report(spec, graph, weights_sha256).map(|c| c.model)
}

/// [`compile`] with streaming as `streaming` says: [`Streaming::Off`] for the
/// GPU target (its dispatches run whole steps).
pub fn compile_streaming(
    spec: &ModelSpec,
    graph: &Graph,
    weights_sha256: &str,
    streaming: Streaming,
) -> Result<CompiledModel, CompileError> {
    compile_report_streaming(spec, graph, weights_sha256, streaming).map(|c| c.model)
}

/// Binds zeros to every parameter: the program's layout (steps, offsets, arena)
/// does not depend on the weights' values, so this compiles a description alone.
pub fn bind_zero_weights(graph: &mut Graph) {
    for h in graph.params.handles().collect::<Vec<_>>() {
        let n = graph.params[h].len();
        graph.params[h].value = Some(vec![0.0; n].into());
    }
}

/// The one compiler driver (passes, plan, lowering to steps) behind every backend and `inspect`.
pub fn compile_with_report(spec: &ModelSpec, graph: &Graph, weights_sha256: &str) -> Result<Compilation, CompileError> {
    compile_report_streaming(spec, graph, weights_sha256, Streaming::Auto)
}

/// [`compile_with_report`] with streaming as `streaming` says.
pub fn compile_report_streaming(
    spec: &ModelSpec,
    graph: &Graph,
    weights_sha256: &str,
    streaming: Streaming,
) -> Result<Compilation, CompileError> {
    let mut g = graph.clone();
    g.retain_outputs(&[OutputKind::Logits]);
    let (fused, fusions) = passes::optimize(&g.compact(), None)?;
    if let Some((_, p)) = fused.params.iter().find(|(_, p)| p.value.is_none()) {
        return Err(CompileError::Unbound(p.key.clone()));
    }
    let (plan, regions) = plan::plan_streamed(&fused, true, streaming);
    let offsets = plan.offsets(&fused);
    let rings = regions.iter().flat_map(|r| r.rings.iter().map(|(owner, slots)| (*owner, *slots))).collect();
    let mut lower = Lowering { graph: &fused, offsets, rings, packer: Packer::default(), steps: Vec::new() };
    let scratch_at = plan.arena_bytes.next_multiple_of(plan::ALIGN) / 4;
    let mut scratch_floats = 0;
    let mut node_steps = Vec::with_capacity(fused.nodes.len());
    for (id, node) in fused.nodes.iter() {
        let first = lower.steps.len();
        lower.node(id, node, scratch_at, &mut scratch_floats)?;
        node_steps.push(first..lower.steps.len());
    }
    let logits_node = fused.output(OutputKind::Logits).expect("the logits are kept above");
    let logits = lower.view(logits_node);
    let (h, w) = (spec.height, spec.width);
    // The caller's NCHW outputs.
    let nchw = |mem: Mem, c: usize, h: usize, w: usize| View {
        mem,
        offset: 0,
        c,
        h,
        w,
        row_stride: w,
        pixel_stride: 1,
        channel_stride: h * w,
        row_mask: ALL_ROWS,
    };
    let tails = Tails {
        run: Step::Elementwise(p::Elementwise::copy(
            logits,
            nchw(Mem::Logits, logits.c, logits.h, logits.w),
            Epilogue::NONE,
        )),
        scores: Step::Upsample(p::Upsample { src: logits, dst: nchw(Mem::Scores, logits.c, h, w) }),
        segment: Step::UpsampleArgmax(p::UpsampleArgmax { src: logits, dst: nchw(Mem::Labels, 1, h, w) }),
    };
    let arena_bytes = (scratch_at * 4 + scratch_floats * 4).next_multiple_of(plan::ALIGN);
    // Emitters print every float as a literal; C has no literal for NaN or infinity.
    if let Some(index) = lower.packer.data.iter().position(|v| !v.is_finite()) {
        return Err(CompileError::NonFinite { index, value: lower.packer.data[index] });
    }
    // Every reader of the input has a form that reads an 8-bit picture instead
    // (the `*_rgb8` entry points).
    let reads_input = |step: &Step| {
        step.parts()
            .3
            .iter()
            .any(|v| matches!(v, FieldValue::View(v) | FieldValue::OptionalView(Some(v)) if v.mem == Mem::Input))
    };
    if let Some(i) = lower.steps.iter().position(|s| reads_input(s) && s.reading_rgb8().is_none()) {
        return Err(CompileError::PictureReader(i));
    }
    let spec_json = serde_json::to_string(spec).unwrap_or_default();
    let recipe = lower.packer.recipe(|r| {
        let mut hash = Sha256::new();
        hash.update(env!("CARGO_PKG_VERSION"));
        hash.update(&spec_json);
        hash.update(format!("{:?}{:?}{:?}{}", r.tensors, r.derived, r.placements, r.len));
        hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
    });
    let model = CompiledModel {
        recipe,
        name: spec.model_name().to_lowercase(),
        spec: spec.clone(),
        weights_sha256: weights_sha256.to_string(),
        calls: program_calls(&lower.steps, &node_steps, &regions),
        steps: lower.steps,
        weights: lower.packer.data,
        arena_bytes,
        logits,
        tails,
        height: h,
        width: w,
        classes: spec.classes,
        parameters: graph.learnable_parameters(),
        macs: graph.total_macs(),
    };
    Ok(Compilation { model, fused, fusions, plan })
}

/// SHA-256 of a file's bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

struct Lowering<'g> {
    graph: &'g Graph,
    offsets: Vec<Option<usize>>,
    /// Slots of the buffer owners that streamed regions keep as rings.
    rings: HashMap<NodeId, usize>,
    packer: Packer,
    steps: Vec<Step>,
}

impl Lowering<'_> {
    /// Where a node's values live.
    fn view(&self, id: NodeId) -> View {
        let g = self.graph;
        let shape = g.nodes[id].shape;
        if id == g.input {
            return View {
                mem: Mem::Input,
                offset: 0,
                c: shape.c,
                h: shape.h,
                w: shape.w,
                row_stride: shape.w,
                pixel_stride: 1,
                channel_stride: shape.h * shape.w,
                row_mask: ALL_ROWS,
            };
        }
        let owner = g.storage_owner(id);
        self.buffer_view(owner, g.channel_offset(id), shape.c)
    }

    fn buffer_view(&self, owner: NodeId, channel_offset: usize, c: usize) -> View {
        let g = self.graph;
        let shape = g.nodes[owner].shape;
        let stride = g.channel_stride(owner);
        let base = self.offsets[owner.index()].expect("every non-input buffer is planned") / 4;
        View {
            mem: Mem::Arena,
            offset: base + channel_offset,
            c,
            h: shape.h,
            w: shape.w,
            row_stride: shape.w * stride,
            pixel_stride: stride,
            channel_stride: 1,
            row_mask: self.rings.get(&owner).map_or(ALL_ROWS, |slots| slots - 1),
        }
    }

    fn unsupported(&self, id: NodeId, what: impl Into<String>) -> CompileError {
        CompileError::Unsupported { node: id, name: self.graph.nodes[id].name.clone(), what: what.into() }
    }

    /// The fixed epilogue form `act2(affine(act(x)))` of a list of steps.
    fn epilogue(&mut self, id: NodeId, steps: &[EpilogueStep]) -> Result<Epilogue, CompileError> {
        let mut e = Epilogue::NONE;
        let mut slot = 0; // 0: act, 1: affine, 2: act2
        for step in steps {
            match step {
                EpilogueStep::Prelu(_) | EpilogueStep::Relu if slot <= 2 => {
                    let act = match step {
                        EpilogueStep::Prelu(s) => Act::Prelu(self.packer.per_channel(self.graph, *s)),
                        _ => Act::Relu,
                    };
                    if slot == 0 {
                        e.act = act;
                        slot = 1;
                    } else {
                        e.act2 = act;
                        slot = 3;
                    }
                }
                EpilogueStep::Affine { scale, shift } if slot <= 1 => {
                    let sc = self.packer.per_channel(self.graph, *scale);
                    e.affine = Some((sc, self.packer.per_channel(self.graph, *shift)));
                    slot = 2;
                }
                other => return Err(self.unsupported(id, format!("epilogue {steps:?} (at {other:?})"))),
            }
        }
        Ok(e)
    }

    fn node(
        &mut self,
        id: NodeId,
        node: &crate::ir::Node,
        scratch_at: usize,
        scratch_floats: &mut usize,
    ) -> Result<(), CompileError> {
        let g = self.graph;
        let epilogue = self.epilogue(id, &node.epilogue)?;
        let step = match &node.op {
            Op::Input => None,
            Op::Concat => {
                for (index, part) in node.inputs.iter().enumerate() {
                    if !g.concat_part_in_place(id, index) {
                        let offset: usize = node.inputs[..index].iter().map(|q| g.nodes[*q].shape.c).sum();
                        let (src, c) = (self.view(*part), g.nodes[*part].shape.c);
                        let dst = self.buffer_view(id, offset, c);
                        self.steps.push(Step::Elementwise(p::Elementwise::copy(src, dst, Epilogue::NONE)));
                    }
                }
                None
            }
            Op::Conv2d(c) if c.groups == 1 => {
                let src = self.view(node.inputs[0]);
                let winograd = uses_winograd(c, src.c, node.shape.c);
                let weights = if winograd {
                    self.packer.winograd_weight(g, c.weight)
                } else {
                    self.packer.conv_weight(g, c.weight)
                };
                let bias = self.packer.bias(g, c.bias, node.shape.c);
                let conv = p::Conv {
                    src,
                    dst: self.view(id),
                    kernel: c.kernel,
                    stride: c.stride,
                    dilation: c.dilation,
                    weights,
                    bias,
                    add: node.inputs.get(1).map(|acc| self.view(*acc)),
                    epilogue,
                };
                Some(if winograd { Step::Winograd(conv) } else { Step::Conv(conv) })
            }
            Op::DepthwisePair { loc, sur } if loc.dilation == 1 => {
                let half = node.shape.c / 2;
                Some(Step::DepthwisePair(p::DepthwisePair {
                    src: self.view(node.inputs[0]),
                    dst: self.view(id),
                    dilation: sur.dilation,
                    loc_weights: self.packer.depthwise_weight(g, loc.weight),
                    sur_weights: self.packer.depthwise_weight(g, sur.weight),
                    loc_bias: self.packer.bias(g, loc.bias, half),
                    sur_bias: self.packer.bias(g, sur.bias, half),
                    epilogue,
                }))
            }
            Op::Add => Some(Step::Elementwise(p::Elementwise {
                add: Some(self.view(node.inputs[1])),
                ..p::Elementwise::copy(self.view(node.inputs[0]), self.view(id), epilogue)
            })),
            Op::AvgPool => Some(Step::AvgPool(p::AvgPool::new(self.view(node.inputs[0]), self.view(id), epilogue))),
            Op::GlobalContext(gc) => {
                let x = self.view(node.inputs[0]);
                let squeeze = p::Squeeze {
                    x,
                    hidden: g.params[gc.fc1_weight].shape[0],
                    fc1_weight: self.packer.dense(g, gc.fc1_weight),
                    fc1_bias: self.packer.dense(g, gc.fc1_bias),
                    fc2_weight: self.packer.dense(g, gc.fc2_weight),
                    fc2_bias: self.packer.dense(g, gc.fc2_bias),
                    scratch: scratch_at,
                };
                *scratch_floats = (*scratch_floats).max(squeeze.scratch_len());
                self.steps.push(Step::ChannelSums(p::ChannelSums { x, sums: scratch_at }));
                self.steps.push(Step::Squeeze(squeeze));
                // The excitation and the residual add, row-parallel.
                Some(Step::Elementwise(p::Elementwise {
                    scale: Some(squeeze.scale_offset()),
                    add: node.inputs.get(1).map(|r| self.view(*r)),
                    ..p::Elementwise::copy(x, self.view(id), epilogue)
                }))
            }
            other => return Err(self.unsupported(id, format!("op `{}`", other.mnemonic()))),
        };
        let produced = step.is_some();
        self.steps.extend(step);
        for tee in &node.tees {
            let epilogue = self.epilogue(id, &tee.epilogue)?;
            let dst = self.buffer_view(tee.owner, tee.channel_offset, node.shape.c);
            // An elementwise or pool producer stores the tee in the same pass
            // (one per step); any other is followed by a copy that reads its
            // result back.
            let own_tee = self.steps.last_mut().filter(|_| produced).and_then(Step::tee_mut);
            match own_tee {
                Some((tee @ None, tee_epilogue)) => (*tee, *tee_epilogue) = (Some(dst), epilogue),
                _ => self.steps.push(Step::Elementwise(p::Elementwise::copy(self.view(id), dst, epilogue))),
            }
        }
        Ok(())
    }
}

/// Whether a convolution runs as Winograd F(2x2, 3x3): 3x3, stride 1, no
/// dilation, and channel counts where the transforms pay off (the stage-1
/// convs: 32 -> 32 at half resolution, a third of the network's MACs).
pub(crate) fn uses_winograd(c: &crate::ir::Conv, ci: usize, co: usize) -> bool {
    let max = cgnet_runtime::program::WINOGRAD_MAX_CHANNELS;
    c.kernel == 3 && c.stride == 1 && c.dilation == 1 && (16..=max).contains(&ci) && (16..=max).contains(&co)
}

/// Packs weights into one f32 vector, each tensor at a 64-byte aligned offset,
/// each packed once, and records where each came from (the packing recipe).
#[derive(Default)]
struct Packer {
    data: Vec<f32>,
    done: HashMap<(ParamId, Layout), usize>,
    placements: Vec<(Origin, Layout, usize)>,
}

impl Packer {
    fn push(&mut self, values: impl IntoIterator<Item = f32>) -> usize {
        self.data.resize(self.data.len().next_multiple_of(16), 0.0);
        let at = self.data.len();
        self.data.extend(values);
        at
    }

    /// Parameter `p` in `layout`, packed once.
    fn place(&mut self, g: &Graph, p: ParamId, layout: Layout) -> usize {
        if let Some(at) = self.done.get(&(p, layout)) {
            return *at;
        }
        let at = self.push(layout.apply(g.value(p).expect("compile checks values")));
        self.done.insert((p, layout), at);
        self.placements.push((g.params[p].origin.clone(), layout, at));
        at
    }

    /// A per-channel vector, padded with zeros to whole vectors plus one.
    fn per_channel(&mut self, g: &Graph, p: ParamId) -> usize {
        self.place(g, p, Layout::PerChannel)
    }

    fn bias(&mut self, g: &Graph, p: Option<ParamId>, c: usize) -> usize {
        match p {
            Some(p) => self.per_channel(g, p),
            // Zeros: the recipe's packed weights start zeroed, so no placement.
            None => self.push(Layout::PerChannel.apply(&vec![0.0; c])),
        }
    }

    fn dense(&mut self, g: &Graph, p: ParamId) -> usize {
        self.place(g, p, Layout::Dense)
    }

    fn conv_weight(&mut self, g: &Graph, p: ParamId) -> usize {
        let shape = &g.params[p].shape;
        self.place(g, p, Layout::Conv { co: shape[0], ci: shape[1], k: shape[2] })
    }

    fn winograd_weight(&mut self, g: &Graph, p: ParamId) -> usize {
        let shape = &g.params[p].shape;
        self.place(g, p, Layout::Winograd { co: shape[0], ci: shape[1] })
    }

    /// `[c][1][3][3]` -> `[ky][kx][c padded]` (padded as per-channel vectors).
    fn depthwise_weight(&mut self, g: &Graph, p: ParamId) -> usize {
        let c = g.params[p].shape[0];
        self.place(g, p, Layout::Depthwise { c })
    }

    /// The recipe that makes `data` from a weight file: tensors by key, then
    /// every derivation after its sources, then the placements.
    fn recipe(&self, fingerprint_of: impl FnOnce(&PackingRecipe) -> String) -> PackingRecipe {
        let mut recipe = PackingRecipe::default();
        let mut tensors: HashMap<String, usize> = HashMap::new();
        let mut derived: HashMap<*const Derivation<Origin>, usize> = HashMap::new();
        // Values are numbered tensors first; derived indices are offset at the end.
        fn intern(
            origin: &Origin,
            recipe: &mut PackingRecipe,
            tensors: &mut HashMap<String, usize>,
            derived: &mut HashMap<*const Derivation<Origin>, usize>,
        ) -> Source {
            match origin {
                Origin::File { key, shape } => Source::Tensor(*tensors.entry(key.clone()).or_insert_with(|| {
                    recipe.tensors.push((key.clone(), shape.clone()));
                    recipe.tensors.len() - 1
                })),
                Origin::Derived(d) => {
                    if let Some(i) = derived.get(&Arc::as_ptr(d)) {
                        return Source::Derived(*i);
                    }
                    let sources = d.map(|o| intern(o, recipe, tensors, derived));
                    recipe.derived_sources.push(sources);
                    let i = recipe.derived_sources.len() - 1;
                    derived.insert(Arc::as_ptr(d), i);
                    Source::Derived(i)
                }
            }
        }
        let mut placements = Vec::new();
        for (origin, layout, offset) in &self.placements {
            let source = intern(origin, &mut recipe, &mut tensors, &mut derived);
            placements.push((source, *layout, *offset));
        }
        let n = recipe.tensors.len();
        let index = |s: &Source| match s {
            Source::Tensor(i) => *i,
            Source::Derived(i) => n + i,
        };
        recipe.derived = recipe.derived_sources.iter().map(|d| d.map(index)).collect();
        recipe.placements = placements
            .iter()
            .map(|(s, layout, offset)| Placement { value: index(s), layout: *layout, offset: *offset })
            .collect();
        recipe.len = self.data.len();
        recipe.fingerprint = fingerprint_of(&recipe);
        recipe
    }
}

/// A value of the recipe while it is built: a file tensor or a derived value.
#[derive(Clone, Copy, Debug)]
enum Source {
    Tensor(usize),
    Derived(usize),
}

/// The packing recipe of a compiled model, owned (see [`cgnet_runtime::recipe`]).
#[derive(Clone, Debug, Default)]
pub struct PackingRecipe {
    /// Keys and shapes of the weight file's tensors it reads.
    pub tensors: Vec<(String, Vec<usize>)>,
    pub derived: Vec<Derivation<usize>>,
    pub placements: Vec<Placement>,
    pub len: usize,
    pub fingerprint: String,
    derived_sources: Vec<Derivation<Source>>,
}

impl PackingRecipe {
    /// Runs `f` on the borrowed form the runtime executes.
    pub fn with<T>(&self, f: impl FnOnce(Recipe<'_>) -> T) -> T {
        let tensors: Vec<FileTensor<'_>> = self.tensors.iter().map(|(key, shape)| FileTensor { key, shape }).collect();
        f(Recipe {
            tensors: &tensors,
            derived: &self.derived,
            placements: &self.placements,
            len: self.len,
            fingerprint: &self.fingerprint,
        })
    }
}

pub use cgnet_runtime::recipe::{pack_conv, pack_winograd};
