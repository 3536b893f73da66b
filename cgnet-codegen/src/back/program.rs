//! Fused graph + plan -> a `CompiledModel`: the kernel steps of one inference
//! (every view and weight offset a constant), the packed weights, and the
//! arena size. Shared by every backend; the Rust and C emitters only print it.
//!
//! The body computes the logits into the arena; three tails finish an
//! inference: copy the logits out (`run`), upsample them (`scores`), or
//! upsample + argmax them (`segment`), so the three entry points share one
//! body and one arena.

use std::collections::HashMap;

use cgnet_runtime::program::{self as p, Act, Epilogue, Mem, Step, View};
use sha2::{Digest, Sha256};

use crate::ir::{EpilogueStep, Graph, NodeId, Op, OutputKind, ParamId};
use crate::spec::ModelSpec;
use crate::{passes, plan};

/// Everything a backend needs to emit one model.
#[derive(Clone, Debug)]
pub struct CompiledModel {
    pub name: String,
    pub spec: ModelSpec,
    pub weights_sha256: String,
    pub steps: Vec<Step>,
    pub weights: Vec<f32>,
    /// Bytes of the arena: the plan plus scratch for F_glo.
    pub arena_bytes: usize,
    /// Where the body leaves the logits (arena, NHWC).
    pub logits: View,
    /// The caller's logits (NCHW), for the `run` tail.
    pub logits_out: View,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    pub parameters: usize,
    pub macs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Verify(#[from] crate::ir::VerifyError),
    #[error("node {node} ({name}): {what} is not supported by the backends")]
    Unsupported { node: NodeId, name: String, what: String },
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

/// Compiles an unfused graph with bound weights. `weights_sha256` names the
/// weight file in emitted headers.
pub fn compile(spec: &ModelSpec, graph: &Graph, weights_sha256: &str) -> Result<CompiledModel, CompileError> {
    compile_with_report(spec, graph, weights_sha256).map(|c| c.model)
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
    let mut g = graph.clone();
    g.retain_outputs(&[OutputKind::Logits]);
    let (fused, fusions) = passes::optimize(&g.compact(), None)?;
    if let Some((_, p)) = fused.params.iter().find(|(_, p)| p.value.is_none()) {
        return Err(CompileError::Unbound(p.key.clone()));
    }
    let plan = plan::plan_with(&fused, true);
    let offsets = plan.offsets(&fused);
    let mut lower = Lowering { graph: &fused, offsets, packer: Packer::default(), steps: Vec::new() };
    let scratch_at = plan.arena_bytes.next_multiple_of(plan::ALIGN) / 4;
    let mut scratch_floats = 0;
    for (id, node) in fused.nodes.iter() {
        lower.node(id, node, scratch_at, &mut scratch_floats)?;
    }
    let logits_node = fused.output(OutputKind::Logits).expect("the logits are kept above");
    let logits = lower.view(logits_node);
    let (h, w) = (spec.height, spec.width);
    let logits_out = View {
        mem: Mem::Logits,
        offset: 0,
        c: logits.c,
        h: logits.h,
        w: logits.w,
        row_stride: logits.w,
        pixel_stride: 1,
        channel_stride: logits.h * logits.w,
    };
    let arena_bytes = (scratch_at * 4 + scratch_floats * 4).next_multiple_of(plan::ALIGN);
    // Emitters print every float as a literal; C has no literal for NaN or infinity.
    if let Some(index) = lower.packer.data.iter().position(|v| !v.is_finite()) {
        return Err(CompileError::NonFinite { index, value: lower.packer.data[index] });
    }
    let model = CompiledModel {
        name: spec.model_name().to_lowercase(),
        spec: spec.clone(),
        weights_sha256: weights_sha256.to_string(),
        steps: lower.steps,
        weights: lower.packer.data,
        arena_bytes,
        logits,
        logits_out,
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
                        self.steps.push(Step::Copy(p::Copy {
                            src,
                            scale: None,
                            add: None,
                            dst,
                            epilogue: Epilogue::NONE,
                        }));
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
            Op::Add => Some(Step::Copy(p::Copy {
                src: self.view(node.inputs[0]),
                scale: None,
                add: Some(self.view(node.inputs[1])),
                dst: self.view(id),
                epilogue,
            })),
            Op::AvgPool => {
                Some(Step::AvgPool(p::AvgPool { src: self.view(node.inputs[0]), dst: self.view(id), epilogue }))
            }
            Op::GlobalContext(gc) => {
                let x = self.view(node.inputs[0]);
                let squeeze = p::GlobalContext {
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
                self.steps.push(Step::GlobalContext(squeeze));
                // The excitation and the residual add, row-parallel.
                Some(Step::Copy(p::Copy {
                    src: x,
                    scale: Some(squeeze.scale_offset()),
                    add: node.inputs.get(1).map(|r| self.view(*r)),
                    dst: self.view(id),
                    epilogue,
                }))
            }
            other => return Err(self.unsupported(id, format!("op `{}`", other.mnemonic()))),
        };
        self.steps.extend(step);
        for tee in &node.tees {
            let epilogue = self.epilogue(id, &tee.epilogue)?;
            let dst = self.buffer_view(tee.owner, tee.channel_offset, node.shape.c);
            self.steps.push(Step::Copy(p::Copy { src: self.view(id), scale: None, add: None, dst, epilogue }));
        }
        Ok(())
    }
}

/// Whether a convolution runs as Winograd F(2x2, 3x3): 3x3, stride 1, no
/// dilation, and channel counts where the transforms pay off (the stage-1
/// convs: 32 -> 32 at half resolution, a third of the network's MACs).
fn uses_winograd(c: &crate::ir::Conv, ci: usize, co: usize) -> bool {
    let max = cgnet_runtime::program::WINOGRAD_MAX_CHANNELS;
    c.kernel == 3 && c.stride == 1 && c.dilation == 1 && (16..=max).contains(&ci) && (16..=max).contains(&co)
}

/// Packs weights into one f32 vector, each tensor at a 64-byte aligned offset,
/// each packed once.
#[derive(Default)]
struct Packer {
    data: Vec<f32>,
    done: HashMap<(ParamId, &'static str), usize>,
}

impl Packer {
    fn push(&mut self, values: impl IntoIterator<Item = f32>) -> usize {
        self.data.resize(self.data.len().next_multiple_of(16), 0.0);
        let at = self.data.len();
        self.data.extend(values);
        at
    }

    fn once(&mut self, p: ParamId, kind: &'static str, make: impl FnOnce() -> Vec<f32>) -> usize {
        if let Some(at) = self.done.get(&(p, kind)) {
            return *at;
        }
        let at = self.push(make());
        self.done.insert((p, kind), at);
        at
    }

    /// A per-channel vector, padded with zeros to whole vectors plus one.
    fn per_channel(&mut self, g: &Graph, p: ParamId) -> usize {
        let v = g.value(p).expect("compile checks values");
        self.once(p, "per_channel", || padded(v))
    }

    fn bias(&mut self, g: &Graph, p: Option<ParamId>, c: usize) -> usize {
        match p {
            Some(p) => self.per_channel(g, p),
            None => self.push(padded(&vec![0.0; c])),
        }
    }

    fn dense(&mut self, g: &Graph, p: ParamId) -> usize {
        let v = g.value(p).expect("compile checks values");
        self.once(p, "dense", || v.to_vec())
    }

    fn conv_weight(&mut self, g: &Graph, p: ParamId) -> usize {
        let (v, shape) = (g.value(p).expect("compile checks values"), g.params[p].shape.clone());
        self.once(p, "conv", || pack_conv(v, shape[0], shape[1], shape[2]))
    }

    fn winograd_weight(&mut self, g: &Graph, p: ParamId) -> usize {
        let (v, shape) = (g.value(p).expect("compile checks values"), g.params[p].shape.clone());
        self.once(p, "winograd", || pack_winograd(v, shape[0], shape[1]))
    }

    /// `[c][1][3][3]` -> `[ky][kx][c padded]` (padded as per-channel vectors).
    fn depthwise_weight(&mut self, g: &Graph, p: ParamId) -> usize {
        let v = g.value(p).expect("compile checks values");
        let c = g.params[p].shape[0];
        let c_pad = c.next_multiple_of(8) + 8;
        self.once(p, "depthwise", || {
            let mut out = vec![0.0; 9 * c_pad];
            for ch in 0..c {
                for t in 0..9 {
                    out[t * c_pad + ch] = v[ch * 9 + t];
                }
            }
            out
        })
    }
}

/// Conv weights `[co][ci][k][k]` -> `[ky][kx][ci][co padded to 8]`, the
/// layout of [`cgnet_runtime::program::Conv`].
pub fn pack_conv(v: &[f32], co: usize, ci: usize, k: usize) -> Vec<f32> {
    let co_pad = co.next_multiple_of(8);
    let mut out = vec![0.0; k * k * ci * co_pad];
    for o in 0..co {
        for i in 0..ci {
            for t in 0..k * k {
                out[(t * ci + i) * co_pad + o] = v[(o * ci + i) * k * k + t];
            }
        }
    }
    out
}

/// 3x3 conv weights `[co][ci][3][3]` -> Winograd `U = G g G^T` packed
/// `[16][ci][co padded to 8]`, with `G = [[1,0,0], [1/2,1/2,1/2], [1/2,-1/2,1/2], [0,0,1]]`
/// (computed in f64), the layout of [`Step::Winograd`].
pub fn pack_winograd(v: &[f32], co: usize, ci: usize) -> Vec<f32> {
    const G: [[f64; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
    let co_pad = co.next_multiple_of(8);
    let mut out = vec![0.0; 16 * ci * co_pad];
    for o in 0..co {
        for i in 0..ci {
            let k = |y: usize, x: usize| f64::from(v[((o * ci + i) * 3 + y) * 3 + x]);
            for a in 0..4 {
                for b in 0..4 {
                    let mut u = 0.0;
                    for (y, gay) in G[a].iter().enumerate() {
                        for (x, gbx) in G[b].iter().enumerate() {
                            u += gay * k(y, x) * gbx;
                        }
                    }
                    out[((a * 4 + b) * ci + i) * co_pad + o] = u as f32;
                }
            }
        }
    }
    out
}

fn padded(v: &[f32]) -> Vec<f32> {
    let mut out = v.to_vec();
    out.resize(v.len().next_multiple_of(8) + 8, 0.0);
    out
}
