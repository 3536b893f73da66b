//! The graph IR: nodes in schedule order in an arena, typed handles, and for
//! every weight the authors' state-dict key.
//!
//! A node computes one op on its inputs, then applies its per-channel
//! `epilogue`, then stores the result where its `placement` says (its own
//! buffer, or a channel slice of another node's buffer: how concatenation is
//! eliminated). `tees` store the same result a second time, with an epilogue of
//! their own, into another buffer's slice. The unfused graph from `lower` uses
//! none of these; the passes in `crate::passes` introduce them.

mod handle;
mod lower;
mod print;
mod verify;

use std::sync::Arc;

pub use cgnet_runtime::recipe::Derivation;

pub use handle::{Arena, Handle, Sigil};
pub use lower::lower;
pub use verify::{verify, VerifyError};

pub type NodeId = Handle<Node>;
pub type ParamId = Handle<Param>;

impl Sigil for Node {
    const SIGIL: char = '%';
}
impl Sigil for Param {
    const SIGIL: char = '@';
}

/// Channels x height x width of one image (batch is always 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w }
    }

    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn pixels(&self) -> usize {
        self.h * self.w
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.c, self.h, self.w)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Trained and counted in `parameters`.
    Learnable,
    /// BatchNorm running statistics: loaded, not counted.
    Statistic,
    /// Made by a pass from other parameters (folded weights, merged vectors).
    Derived,
}

/// Where a parameter's values come from: a tensor of the weight file, or a
/// derivation of other parameters (kept whole, so that it survives `compact`).
/// The packing recipe of a compiled model is made from these.
#[derive(Clone, Debug)]
pub enum Origin {
    File { key: String, shape: Vec<usize> },
    Derived(Arc<Derivation<Origin>>),
}

/// A weight tensor. Its value is `None` until weights are bound.
#[derive(Clone, Debug)]
pub struct Param {
    /// The authors' state-dict key, or a descriptive name for derived params.
    pub key: String,
    pub shape: Vec<usize>,
    pub kind: ParamKind,
    pub value: Option<Arc<[f32]>>,
    pub origin: Origin,
}

impl Param {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A convolution (cross-correlation, as PyTorch), zero padding `dilation * (kernel - 1) / 2`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv {
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub groups: usize,
    /// `[out, in / groups, kernel, kernel]`.
    pub weight: ParamId,
    /// `[out]`, created when a BatchNorm is folded in.
    pub bias: Option<ParamId>,
}

impl Conv {
    pub fn padding(&self) -> usize {
        self.dilation * (self.kernel - 1) / 2
    }
}

/// F_glo fused: global average, FC, ReLU, FC, sigmoid, channel scale, and the
/// block's global residual when it has one (second input).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalContext {
    /// `[hidden, c]` and `[hidden]`.
    pub fc1_weight: ParamId,
    pub fc1_bias: ParamId,
    /// `[c, hidden]` and `[c]`.
    pub fc2_weight: ParamId,
    pub fc2_bias: ParamId,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// The image, `[3, H, W]`.
    Input,
    Conv2d(Conv),
    /// F_loc and F_sur fused: two depthwise 3x3 convs of one input (dilation 1
    /// and `dilation`) writing the two halves of one output.
    DepthwisePair {
        loc: Conv,
        sur: Conv,
    },
    BatchNorm {
        gamma: ParamId,
        beta: ParamId,
        mean: ParamId,
        var: ParamId,
        eps: f32,
    },
    Prelu {
        slope: ParamId,
    },
    Relu,
    /// Channel concatenation of the inputs, in order.
    Concat,
    /// `AvgPool2d(3, stride 2, padding 1)`, padding counted in the divisor.
    AvgPool,
    /// Mean over height and width: `[c, 1, 1]`.
    GlobalAvgPool,
    /// Fully connected on a `[c, 1, 1]` input; weight `[out, c]`, bias `[out]`.
    Linear {
        weight: ParamId,
        bias: ParamId,
    },
    Sigmoid,
    /// `x * s` with `s` of shape `[c, 1, 1]` (inputs `x`, `s`).
    ChannelScale,
    Add,
    /// Bilinear resize to the node's shape, `align_corners = False`.
    Upsample,
    /// Index of the largest channel per pixel: `[1, H, W]` (as f32).
    Argmax,
    GlobalContext(GlobalContext),
    /// Upsample then argmax without materialising the full-resolution scores.
    UpsampleArgmax,
}

impl Op {
    pub fn mnemonic(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv2d(_) => "conv2d",
            Op::DepthwisePair { .. } => "depthwise_pair",
            Op::BatchNorm { .. } => "batch_norm",
            Op::Prelu { .. } => "prelu",
            Op::Relu => "relu",
            Op::Concat => "concat",
            Op::AvgPool => "avg_pool",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Linear { .. } => "linear",
            Op::Sigmoid => "sigmoid",
            Op::ChannelScale => "channel_scale",
            Op::Add => "add",
            Op::Upsample => "upsample",
            Op::Argmax => "argmax",
            Op::GlobalContext(_) => "global_context",
            Op::UpsampleArgmax => "upsample_argmax",
        }
    }

    /// Parameters the op reads, in a fixed order.
    pub fn params(&self) -> Vec<ParamId> {
        let conv = |c: &Conv| std::iter::once(c.weight).chain(c.bias).collect::<Vec<_>>();
        match self {
            Op::Conv2d(c) => conv(c),
            Op::DepthwisePair { loc, sur } => [conv(loc), conv(sur)].concat(),
            Op::BatchNorm { gamma, beta, mean, var, .. } => vec![*gamma, *beta, *mean, *var],
            Op::Prelu { slope } => vec![*slope],
            Op::Linear { weight, bias } => vec![*weight, *bias],
            Op::GlobalContext(g) => vec![g.fc1_weight, g.fc1_bias, g.fc2_weight, g.fc2_bias],
            _ => Vec::new(),
        }
    }

    /// Multiply-adds of one evaluation producing `out` from inputs of shapes `ins`.
    pub fn macs(&self, ins: &[Shape], out: Shape, params: &Arena<Param>) -> u64 {
        let conv = |c: &Conv, out_c: usize, in_c: usize| {
            (out_c * out.pixels() * (in_c / c.groups) * c.kernel * c.kernel) as u64
        };
        match self {
            Op::Conv2d(c) => conv(c, out.c, ins[0].c),
            Op::DepthwisePair { loc, sur } => conv(loc, out.c / 2, ins[0].c) + conv(sur, out.c / 2, ins[0].c),
            Op::Linear { weight, .. } => params[*weight].len() as u64,
            Op::GlobalContext(g) => (params[g.fc1_weight].len() + params[g.fc2_weight].len()) as u64,
            _ => 0,
        }
    }
}

/// A per-channel operation applied to a node's result before it is stored.
#[derive(Clone, Debug, PartialEq)]
pub enum EpilogueStep {
    /// `x * scale[c] + shift[c]` (a BatchNorm that could not be folded).
    Affine {
        scale: ParamId,
        shift: ParamId,
    },
    Prelu(ParamId),
    Relu,
}

impl EpilogueStep {
    pub fn params(&self) -> Vec<ParamId> {
        match self {
            EpilogueStep::Prelu(p) => vec![*p],
            EpilogueStep::Affine { scale, shift } => vec![*scale, *shift],
            EpilogueStep::Relu => Vec::new(),
        }
    }
}

/// Where a node's result is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// In a buffer of its own.
    Own,
    /// In channels `channel_offset..` of `owner`'s buffer (a concat).
    Slice { owner: NodeId, channel_offset: usize },
}

/// A second store of a node's result, into a slice of another buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Tee {
    pub owner: NodeId,
    pub channel_offset: usize,
    pub epilogue: Vec<EpilogueStep>,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub shape: Shape,
    /// Where it comes from in the authors' model (`level2.0.F_loc`).
    pub name: String,
    pub epilogue: Vec<EpilogueStep>,
    pub placement: Placement,
    pub tees: Vec<Tee>,
}

impl Node {
    pub fn new(op: Op, inputs: Vec<NodeId>, shape: Shape, name: impl Into<String>) -> Self {
        Self { op, inputs, shape, name: name.into(), epilogue: Vec::new(), placement: Placement::Own, tees: Vec::new() }
    }

    /// Every parameter the node reads: the op's, then its epilogues'.
    pub fn params(&self) -> Vec<ParamId> {
        let mut params = self.op.params();
        params.extend(self.epilogue.iter().flat_map(EpilogueStep::params));
        params.extend(self.tees.iter().flat_map(|t| t.epilogue.iter().flat_map(EpilogueStep::params)));
        params
    }
}

/// Buffers with at least this many channels pad their pixel stride to a
/// multiple of it: one AVX2 register of f32, two NEON registers.
pub const CHANNEL_ALIGN: usize = 8;

/// The pixel stride of a buffer of `c` channels.
pub fn padded_channels(c: usize) -> usize {
    if c >= CHANNEL_ALIGN {
        c.next_multiple_of(CHANNEL_ALIGN)
    } else {
        c
    }
}

/// What a graph output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Class scores at 1/8 resolution: `[C, ceil(H/8), ceil(W/8)]`.
    Logits,
    /// Bilinearly upsampled scores: `[C, H, W]`.
    Scores,
    /// Argmax of the scores: `[1, H, W]`.
    Labels,
}

impl OutputKind {
    pub const ALL: [OutputKind; 3] = [OutputKind::Logits, OutputKind::Scores, OutputKind::Labels];

    pub fn name(self) -> &'static str {
        match self {
            OutputKind::Logits => "logits",
            OutputKind::Scores => "scores",
            OutputKind::Labels => "labels",
        }
    }
}

/// A CGNet as a dataflow graph. Node order is the schedule.
#[derive(Clone, Debug)]
pub struct Graph {
    pub nodes: Arena<Node>,
    pub params: Arena<Param>,
    pub input: NodeId,
    pub outputs: Vec<(OutputKind, NodeId)>,
}

impl Graph {
    /// Keeps only the outputs of the given kinds (compact afterwards to drop
    /// what no output needs).
    pub fn retain_outputs(&mut self, kinds: &[OutputKind]) {
        self.outputs.retain(|(k, _)| kinds.contains(k));
    }

    pub fn output(&self, kind: OutputKind) -> Option<NodeId> {
        self.outputs.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n)
    }

    /// Learnable parameters (BatchNorm statistics excluded), as PyTorch counts them.
    pub fn learnable_parameters(&self) -> usize {
        self.params.iter().filter(|(_, p)| p.kind == ParamKind::Learnable).map(|(_, p)| p.len()).sum()
    }

    /// The weights a checkpoint must provide: every non-derived parameter.
    pub fn expected_weights(&self) -> Vec<cgnet_runtime::ExpectedParam> {
        self.params
            .iter()
            .filter(|(_, p)| p.kind != ParamKind::Derived)
            .map(|(_, p)| cgnet_runtime::ExpectedParam { key: p.key.clone(), shape: p.shape.clone() })
            .collect()
    }

    /// Binds checked weights to the parameters (by key).
    pub fn bind(&mut self, weights: &cgnet_runtime::Weights) {
        for handle in self.params.handles().collect::<Vec<_>>() {
            let param = &mut self.params[handle];
            if let Some(values) = weights.get(&param.key) {
                param.value = Some(values.into());
            }
        }
    }

    /// Multiply-adds of one node.
    pub fn node_macs(&self, id: NodeId) -> u64 {
        let node = &self.nodes[id];
        let ins: Vec<Shape> = node.inputs.iter().map(|i| self.nodes[*i].shape).collect();
        node.op.macs(&ins, node.shape, &self.params)
    }

    pub fn total_macs(&self) -> u64 {
        self.nodes.handles().map(|n| self.node_macs(n)).sum()
    }

    /// For each node, the nodes that read it (as inputs), in schedule order.
    pub fn users(&self) -> Vec<Vec<NodeId>> {
        let mut users = vec![Vec::new(); self.nodes.len()];
        for (id, node) in self.nodes.iter() {
            for input in &node.inputs {
                users[input.index()].push(id);
            }
        }
        users
    }

    pub fn is_output(&self, id: NodeId) -> bool {
        self.outputs.iter().any(|(_, n)| *n == id)
    }

    /// The buffer a node's result lives in: its own, or its placement's owner.
    pub fn storage_owner(&self, id: NodeId) -> NodeId {
        match self.nodes[id].placement {
            Placement::Own => id,
            Placement::Slice { owner, .. } => owner,
        }
    }

    /// Floats between two pixels of a buffer owner: the channel count rounded up
    /// to [`CHANNEL_ALIGN`] (see ARCHITECTURE.md, "Activation layout").
    pub fn channel_stride(&self, owner: NodeId) -> usize {
        padded_channels(self.nodes[owner].shape.c)
    }

    /// Bytes of a buffer owner in the internal layout.
    pub fn buffer_bytes(&self, owner: NodeId) -> usize {
        self.channel_stride(owner) * self.nodes[owner].shape.pixels() * std::mem::size_of::<f32>()
    }

    /// Whether part `index` of a concat is stored in the concat's buffer by its
    /// producer (placed there, or teed there), so that no copy is needed.
    pub fn concat_part_in_place(&self, concat: NodeId, index: usize) -> bool {
        let parts = &self.nodes[concat].inputs;
        let offset: usize = parts[..index].iter().map(|p| self.nodes[*p].shape.c).sum();
        let part = parts[index];
        (self.storage_owner(part) == concat && self.channel_offset(part) == offset)
            || self.nodes[part].tees.iter().any(|t| t.owner == concat && t.channel_offset == offset)
    }

    /// Channel offset of a node's result inside its storage owner.
    pub fn channel_offset(&self, id: NodeId) -> usize {
        match self.nodes[id].placement {
            Placement::Own => 0,
            Placement::Slice { channel_offset, .. } => channel_offset,
        }
    }

    pub fn add_param(
        &mut self,
        key: impl Into<String>,
        shape: Vec<usize>,
        kind: ParamKind,
        value: Option<Vec<f32>>,
    ) -> ParamId {
        let key = key.into();
        let origin = Origin::File { key: key.clone(), shape: shape.clone() };
        self.params.push(Param { key, shape, kind, value: value.map(Into::into), origin })
    }

    /// A parameter computed from others by `how`; unbound when a source is unbound.
    pub fn add_derived_param(
        &mut self,
        key: impl Into<String>,
        shape: Vec<usize>,
        how: Derivation<ParamId>,
    ) -> ParamId {
        let value = how.evaluate(|p| self.value(*p));
        if let Some(v) = &value {
            debug_assert_eq!(v.len(), shape.iter().product::<usize>(), "derived parameter");
        }
        let origin = Origin::Derived(Arc::new(how.map(|p| self.params[*p].origin.clone())));
        self.params.push(Param {
            key: key.into(),
            shape,
            kind: ParamKind::Derived,
            value: value.map(Into::into),
            origin,
        })
    }

    /// The value of a bound parameter.
    pub fn value(&self, p: ParamId) -> Option<&[f32]> {
        self.params[p].value.as_deref()
    }

    /// Makes every reader of `old` (inputs, outputs) read `new` instead.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        for handle in self.nodes.handles().collect::<Vec<_>>() {
            for input in &mut self.nodes[handle].inputs {
                if *input == old {
                    *input = new;
                }
            }
        }
        for (_, out) in &mut self.outputs {
            if *out == old {
                *out = new;
            }
        }
    }

    /// Drops nodes nothing depends on and params nothing reads, renumbering the
    /// rest in order so that printed names stay dense and deterministic.
    pub fn compact(&self) -> Graph {
        let mut live = vec![false; self.nodes.len()];
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|(_, n)| *n).collect();
        stack.push(self.input);
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut live[id.index()], true) {
                continue;
            }
            let node = &self.nodes[id];
            stack.extend(node.inputs.iter().copied());
            if let Placement::Slice { owner, .. } = node.placement {
                stack.push(owner);
            }
            stack.extend(node.tees.iter().map(|t| t.owner));
        }
        // A node placed into a live owner is live: the owner's readers see its values.
        loop {
            let mut changed = false;
            for (id, node) in self.nodes.iter() {
                let writes_live = matches!(node.placement, Placement::Slice { owner, .. } if live[owner.index()])
                    || node.tees.iter().any(|t| live[t.owner.index()]);
                if writes_live && !live[id.index()] {
                    live[id.index()] = true;
                    for input in &node.inputs {
                        live[input.index()] = true;
                    }
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        self.rebuilt(self.nodes.handles().filter(|id| live[id.index()]))
    }

    /// The graph with its nodes in `order` (a schedule: every node after its
    /// inputs, each node once), renumbered; parameters nothing reads dropped.
    pub fn reordered(&self, order: &[NodeId]) -> Graph {
        self.rebuilt(order.iter().copied())
    }

    /// The nodes `order` (every node they reference among them), renumbered in that order.
    fn rebuilt(&self, order: impl Iterator<Item = NodeId>) -> Graph {
        let mut node_map = vec![None; self.nodes.len()];
        let mut param_map = vec![None; self.params.len()];
        let mut out =
            Graph { nodes: Arena::default(), params: Arena::default(), input: self.input, outputs: Vec::new() };
        let mut map_param = |p: ParamId, out: &mut Graph| -> ParamId {
            *param_map[p.index()].get_or_insert_with(|| out.params.push(self.params[p].clone()))
        };
        for id in order {
            let node = &self.nodes[id];
            let mut node = node.clone();
            remap_params(&mut node, |p| map_param(p, &mut out));
            node_map[id.index()] = Some(out.nodes.push(node));
        }
        let map = |n: NodeId| node_map[n.index()].expect("live nodes only reference live nodes");
        for handle in out.nodes.handles().collect::<Vec<_>>() {
            let node = &mut out.nodes[handle];
            for input in &mut node.inputs {
                *input = map(*input);
            }
            if let Placement::Slice { owner, .. } = &mut node.placement {
                *owner = map(*owner);
            }
            for tee in &mut node.tees {
                tee.owner = map(tee.owner);
            }
        }
        out.input = map(self.input);
        out.outputs = self.outputs.iter().map(|(k, n)| (*k, map(*n))).collect();
        out
    }
}

/// Applies `f` to every parameter handle a node holds.
pub fn remap_params(node: &mut Node, mut f: impl FnMut(ParamId) -> ParamId) {
    let conv = |c: &mut Conv, f: &mut dyn FnMut(ParamId) -> ParamId| {
        c.weight = f(c.weight);
        c.bias = c.bias.map(&mut *f);
    };
    match &mut node.op {
        Op::Conv2d(c) => conv(c, &mut f),
        Op::DepthwisePair { loc, sur } => {
            conv(loc, &mut f);
            conv(sur, &mut f);
        }
        Op::BatchNorm { gamma, beta, mean, var, .. } => {
            for p in [gamma, beta, mean, var] {
                *p = f(*p);
            }
        }
        Op::Prelu { slope } => *slope = f(*slope),
        Op::Linear { weight, bias } => {
            *weight = f(*weight);
            *bias = f(*bias);
        }
        Op::GlobalContext(g) => {
            for p in [&mut g.fc1_weight, &mut g.fc1_bias, &mut g.fc2_weight, &mut g.fc2_bias] {
                *p = f(*p);
            }
        }
        _ => {}
    }
    let steps = node.epilogue.iter_mut().chain(node.tees.iter_mut().flat_map(|t| t.epilogue.iter_mut()));
    for step in steps {
        match step {
            EpilogueStep::Prelu(p) => *p = f(*p),
            EpilogueStep::Affine { scale, shift } => {
                *scale = f(*scale);
                *shift = f(*shift);
            }
            EpilogueStep::Relu => {}
        }
    }
}
