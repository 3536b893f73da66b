//! The reference interpreter: the numeric oracle every pass and backend is
//! checked against.
//!
//! It runs any verified graph, fused or not. Values are stored exactly as a
//! backend would store them: each buffer in the internal NHWC layout (channel
//! stride = the buffer's padded channel count, so concat slices interleave), in
//! separate allocations ([`Storage::separate`]) or at planned offsets of one
//! arena ([`Storage::arena`]). Each op reads its inputs into a plain CHW
//! [`Tensor`], computes with the obviously-correct loops of [`kernels`], and
//! scatters its result back.

pub mod kernels;

use std::collections::BTreeMap;

use kernels::{ConvGeometry, Tensor};

use crate::ir::{EpilogueStep, Graph, NodeId, Op, OutputKind, ParamId};

#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    #[error("input has shape {found:?}; this model takes [1, 3, {height}, {width}]")]
    InputShape { found: Vec<usize>, height: usize, width: usize },
    #[error("parameter `{0}` has no value: bind weights before running")]
    Unbound(String),
}

/// Where every buffer lives during one run.
pub struct Storage {
    separate: Vec<Option<Vec<f32>>>,
    arena: Vec<f32>,
    /// Offset in f32 elements of each buffer placed in the arena.
    arena_offsets: Vec<Option<usize>>,
}

impl Storage {
    /// Every buffer in an allocation of its own.
    pub fn separate(graph: &Graph) -> Self {
        Self {
            separate: vec![None; graph.nodes.len()],
            arena: Vec::new(),
            arena_offsets: vec![None; graph.nodes.len()],
        }
    }

    /// Buffers at `offsets` (bytes, multiple of 4) in one arena of `arena_bytes`;
    /// buffers without an offset (the input, the outputs) live outside it.
    pub fn arena(graph: &Graph, arena_bytes: usize, offsets: &[Option<usize>]) -> Self {
        let mut storage = Self::separate(graph);
        // Poison the arena so that a read of a buffer before it is written shows up.
        storage.arena = vec![f32::NAN; arena_bytes / 4];
        storage.arena_offsets = offsets.iter().map(|o| o.map(|b| b / 4)).collect();
        storage
    }

    fn buffer(&self, owner: NodeId) -> &[f32] {
        match self.arena_offsets[owner.index()] {
            Some(_) => &self.arena,
            None => self.separate[owner.index()].as_deref().unwrap_or(&[]),
        }
    }

    fn base(&self, owner: NodeId) -> usize {
        self.arena_offsets[owner.index()].unwrap_or(0)
    }

    fn buffer_mut(&mut self, graph: &Graph, owner: NodeId) -> &mut [f32] {
        match self.arena_offsets[owner.index()] {
            Some(_) => &mut self.arena,
            None => self.separate[owner.index()]
                .get_or_insert_with(|| vec![f32::NAN; graph.buffer_bytes(owner) / std::mem::size_of::<f32>()]),
        }
    }

    /// The values of `node` (CHW), wherever they are stored.
    pub fn read(&self, graph: &Graph, node: NodeId) -> Tensor {
        let shape = graph.nodes[node].shape;
        let owner = graph.storage_owner(node);
        let (stride, offset) = (graph.channel_stride(owner), graph.channel_offset(node));
        let (buffer, base) = (self.buffer(owner), self.base(owner));
        let mut t = Tensor::zeros(shape.c, shape.h, shape.w);
        for c in 0..shape.c {
            for p in 0..shape.pixels() {
                t.data[c * shape.pixels() + p] = buffer[base + p * stride + offset + c];
            }
        }
        t
    }

    /// Stores `t` at channels `offset..` of `owner`'s buffer.
    pub fn write(&mut self, graph: &Graph, owner: NodeId, offset: usize, t: &Tensor) {
        let stride = graph.channel_stride(owner);
        let base = self.base(owner);
        let buffer = self.buffer_mut(graph, owner);
        for c in 0..t.c {
            for p in 0..t.h * t.w {
                buffer[base + p * stride + offset + c] = t.data[c * t.h * t.w + p];
            }
        }
    }
}

/// Runs `graph` on a CHW input, every buffer separately allocated.
pub fn run(graph: &Graph, input: &Tensor) -> Result<BTreeMap<OutputKind, Tensor>, InterpError> {
    execute(graph, input, &mut Storage::separate(graph))
}

/// Runs `graph` on a CHW input with the given storage.
pub fn execute(
    graph: &Graph,
    input: &Tensor,
    storage: &mut Storage,
) -> Result<BTreeMap<OutputKind, Tensor>, InterpError> {
    let expected = graph.nodes[graph.input].shape;
    if (input.c, input.h, input.w) != (expected.c, expected.h, expected.w) {
        return Err(InterpError::InputShape {
            found: vec![1, input.c, input.h, input.w],
            height: expected.h,
            width: expected.w,
        });
    }
    if let Some((_, p)) = graph.params.iter().find(|(_, p)| p.value.is_none()) {
        return Err(InterpError::Unbound(p.key.clone()));
    }
    for (id, node) in graph.nodes.iter() {
        let owner = graph.storage_owner(id);
        if matches!(node.op, Op::Concat) {
            assemble_concat(graph, id, storage);
            continue;
        }
        let mut result = if id == graph.input { input.clone() } else { evaluate(graph, id, storage) };
        apply_epilogue(graph, &node.epilogue, &mut result);
        storage.write(graph, owner, graph.channel_offset(id), &result);
        for tee in &node.tees {
            let mut copy = result.clone();
            apply_epilogue(graph, &tee.epilogue, &mut copy);
            storage.write(graph, tee.owner, tee.channel_offset, &copy);
        }
    }
    Ok(graph.outputs.iter().map(|(kind, node)| (*kind, storage.read(graph, *node))).collect())
}

fn value(graph: &Graph, p: ParamId) -> &[f32] {
    graph.value(p).expect("execute checks that every parameter is bound")
}

/// The op's result before the epilogue.
fn evaluate(graph: &Graph, id: NodeId, storage: &Storage) -> Tensor {
    let node = &graph.nodes[id];
    let input = |i: usize| storage.read(graph, node.inputs[i]);
    let v = |p| value(graph, p);
    let conv = |c: &crate::ir::Conv, x: &Tensor, out_c| {
        let g = ConvGeometry { kernel: c.kernel, stride: c.stride, dilation: c.dilation, groups: c.groups };
        kernels::conv2d(x, v(c.weight), c.bias.map(v), out_c, g)
    };
    match &node.op {
        Op::Input => unreachable!("the input is stored before evaluation"),
        Op::Conv2d(c) => {
            let mut out = conv(c, &input(0), node.shape.c);
            if node.inputs.len() == 2 {
                out.data.iter_mut().zip(&input(1).data).for_each(|(o, a)| *o += a);
            }
            out
        }
        Op::DepthwisePair { loc, sur } => {
            let x = input(0);
            let (a, b) = (conv(loc, &x, x.c), conv(sur, &x, x.c));
            Tensor { c: a.c + b.c, data: [a.data, b.data].concat(), ..a }
        }
        Op::BatchNorm { gamma, beta, mean, var, eps } => {
            let mut x = input(0);
            kernels::batch_norm(&mut x, v(*gamma), v(*beta), v(*mean), v(*var), *eps);
            x
        }
        Op::Prelu { slope } => {
            let mut x = input(0);
            kernels::prelu(&mut x, v(*slope));
            x
        }
        Op::Relu => {
            let mut x = input(0);
            kernels::relu(&mut x);
            x
        }
        Op::Sigmoid => {
            let mut x = input(0);
            kernels::sigmoid(&mut x);
            x
        }
        Op::Concat => unreachable!("concats are assembled by `assemble_concat`"),
        Op::AvgPool => kernels::avg_pool_3s2(&input(0)),
        Op::GlobalAvgPool => kernels::global_avg_pool(&input(0)),
        Op::Linear { weight, bias } => kernels::linear(&input(0), v(*weight), v(*bias)),
        Op::ChannelScale => kernels::channel_scale(&input(0), &input(1)),
        Op::Add => kernels::add(&input(0), &input(1)),
        Op::Upsample => kernels::upsample_bilinear(&input(0), node.shape.h, node.shape.w),
        Op::Argmax => kernels::argmax(&input(0)),
        Op::UpsampleArgmax => kernels::upsample_argmax(&input(0), node.shape.h, node.shape.w),
        Op::GlobalContext(g) => {
            let x = input(0);
            let scale =
                kernels::global_context_scale(&x, (v(g.fc1_weight), v(g.fc1_bias)), (v(g.fc2_weight), v(g.fc2_bias)));
            let scaled = kernels::channel_scale(&x, &scale);
            match node.inputs.get(1) {
                Some(_) => kernels::add(&input(1), &scaled),
                None => scaled,
            }
        }
    }
}

/// Copies into a concat's buffer the parts that were not written there in place.
fn assemble_concat(graph: &Graph, id: NodeId, storage: &mut Storage) {
    let mut offset = 0;
    for (index, part) in graph.nodes[id].inputs.iter().enumerate() {
        if !graph.concat_part_in_place(id, index) {
            let t = storage.read(graph, *part);
            storage.write(graph, id, offset, &t);
        }
        offset += graph.nodes[*part].shape.c;
    }
}

fn apply_epilogue(graph: &Graph, steps: &[EpilogueStep], x: &mut Tensor) {
    for step in steps {
        match step {
            EpilogueStep::Affine { scale, shift } => kernels::affine(x, value(graph, *scale), value(graph, *shift)),
            EpilogueStep::Prelu(s) => kernels::prelu(x, value(graph, *s)),
            EpilogueStep::Relu => kernels::relu(x),
        }
    }
}

/// Runs `graph` with every intermediate buffer at its planned offset in one arena.
pub fn run_planned(
    graph: &Graph,
    plan: &crate::plan::Plan,
    input: &Tensor,
) -> Result<BTreeMap<OutputKind, Tensor>, InterpError> {
    execute(graph, input, &mut Storage::arena(graph, plan.arena_bytes, &plan.offsets(graph)))
}
