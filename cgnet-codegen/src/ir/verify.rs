//! The verifier: run after lowering and between passes, so that backends may
//! trust the graph they are given.

use super::{EpilogueStep, Graph, Node, NodeId, Op, ParamId, Placement, Shape};

#[derive(Debug, thiserror::Error)]
#[error("IR verification failed:\n  {}", .0.join("\n  "))]
pub struct VerifyError(pub Vec<String>);

/// The shape `node` produces from its inputs, or why it is ill-typed.
/// Upsample takes its target size from `node.shape`.
pub fn infer_shape(graph: &Graph, node: &Node) -> Result<Shape, String> {
    let ins: Vec<Shape> = node.inputs.iter().map(|i| graph.nodes[*i].shape).collect();
    let arity = |n: usize| {
        if ins.len() == n {
            Ok(())
        } else {
            Err(format!("{} takes {n} input(s), has {}", node.op.mnemonic(), ins.len()))
        }
    };
    let param_shape = |p: ParamId| graph.params.get(p).map(|p| p.shape.clone()).ok_or(format!("unknown param {p}"));
    let expect = |p: ParamId, shape: Vec<usize>| -> Result<(), String> {
        let actual = param_shape(p)?;
        if actual == shape {
            Ok(())
        } else {
            Err(format!("param {p} `{}` has shape {actual:?}, expected {shape:?}", graph.params[p].key))
        }
    };
    let strided = |s: Shape, stride: usize| Shape::new(s.c, s.h.div_ceil(stride), s.w.div_ceil(stride));
    let conv_out = |c: &super::Conv, x: Shape| -> Result<Shape, String> {
        if c.kernel.is_multiple_of(2)
            || c.stride == 0
            || c.dilation == 0
            || c.groups == 0
            || !x.c.is_multiple_of(c.groups)
        {
            return Err(format!("unsupported conv geometry {c:?} on {x}"));
        }
        let out = param_shape(c.weight)?[0];
        expect(c.weight, vec![out, x.c / c.groups, c.kernel, c.kernel])?;
        if let Some(b) = c.bias {
            expect(b, vec![out])?;
        }
        Ok(Shape { c: out, ..strided(x, c.stride) })
    };
    let per_channel = |ps: &[ParamId], c: usize| ps.iter().try_for_each(|p| expect(*p, vec![c]));
    let shape = match &node.op {
        Op::Input => {
            arity(0)?;
            node.shape
        }
        Op::Conv2d(c) => {
            // A second input is an addend of the output's shape: the sums so
            // far of a convolution split over its input channels.
            if ins.len() != 2 {
                arity(1)?;
            }
            let out = conv_out(c, ins[0])?;
            if ins.get(1).is_some_and(|a| *a != out) {
                return Err(format!("the addend of a convolution has shape {}, its output {out}", ins[1]));
            }
            out
        }
        Op::DepthwisePair { loc, sur } => {
            arity(1)?;
            let a = conv_out(loc, ins[0])?;
            let b = conv_out(sur, ins[0])?;
            if a != b || loc.groups != ins[0].c || loc.stride != 1 || sur.stride != 1 {
                return Err("depthwise pair halves must be depthwise, stride 1, of equal shape".into());
            }
            Shape { c: a.c + b.c, ..a }
        }
        Op::BatchNorm { gamma, beta, mean, var, .. } => {
            arity(1)?;
            per_channel(&[*gamma, *beta, *mean, *var], ins[0].c)?;
            ins[0]
        }
        Op::Prelu { slope } => {
            arity(1)?;
            per_channel(&[*slope], ins[0].c)?;
            ins[0]
        }
        Op::Relu | Op::Sigmoid => {
            arity(1)?;
            ins[0]
        }
        Op::Concat => {
            if ins.is_empty() || ins.iter().any(|s| (s.h, s.w) != (ins[0].h, ins[0].w)) {
                return Err(format!("concat of mismatched shapes {ins:?}"));
            }
            Shape { c: ins.iter().map(|s| s.c).sum(), ..ins[0] }
        }
        Op::AvgPool => {
            arity(1)?;
            strided(ins[0], 2)
        }
        Op::GlobalAvgPool => {
            arity(1)?;
            Shape::new(ins[0].c, 1, 1)
        }
        Op::Linear { weight, bias } => {
            arity(1)?;
            let out = param_shape(*weight)?[0];
            expect(*weight, vec![out, ins[0].len()])?;
            expect(*bias, vec![out])?;
            Shape::new(out, 1, 1)
        }
        Op::ChannelScale => {
            arity(2)?;
            if ins[1] != Shape::new(ins[0].c, 1, 1) {
                return Err(format!("channel scale of {} by {}", ins[0], ins[1]));
            }
            ins[0]
        }
        Op::Add => {
            arity(2)?;
            if ins[0] != ins[1] {
                return Err(format!("add of {} and {}", ins[0], ins[1]));
            }
            ins[0]
        }
        Op::Upsample | Op::UpsampleArgmax => {
            arity(1)?;
            if node.shape.h < ins[0].h || node.shape.w < ins[0].w {
                return Err(format!("upsample from {} to {}", ins[0], node.shape));
            }
            let c = if matches!(node.op, Op::Upsample) { ins[0].c } else { 1 };
            Shape::new(c, node.shape.h, node.shape.w)
        }
        Op::Argmax => {
            arity(1)?;
            Shape { c: 1, ..ins[0] }
        }
        Op::GlobalContext(g) => {
            if !(1..=2).contains(&ins.len()) || ins.get(1).is_some_and(|r| *r != ins[0]) {
                return Err(format!("global_context takes x and an optional residual of its shape, has {ins:?}"));
            }
            let c = ins[0].c;
            let hidden = param_shape(g.fc1_weight)?[0];
            expect(g.fc1_weight, vec![hidden, c])?;
            expect(g.fc1_bias, vec![hidden])?;
            expect(g.fc2_weight, vec![c, hidden])?;
            expect(g.fc2_bias, vec![c])?;
            ins[0]
        }
    };
    for step in node.epilogue.iter().chain(node.tees.iter().flat_map(|t| &t.epilogue)) {
        if !matches!(step, EpilogueStep::Relu) {
            per_channel(&step.params(), shape.c)?;
        }
    }
    Ok(shape)
}

/// Checks that the graph is well formed: schedule order, shapes, parameters,
/// placements (slices inside their owner, no two writers of one channel).
pub fn verify(graph: &Graph) -> Result<(), VerifyError> {
    let mut errors = Vec::new();
    let mut slices: Vec<Vec<(usize, usize, NodeId)>> = vec![Vec::new(); graph.nodes.len()];
    for (id, node) in graph.nodes.iter() {
        let mut err = |m: String| errors.push(format!("{id} ({}): {m}", node.name));
        if let Some(bad) = node.inputs.iter().find(|i| **i >= id) {
            err(format!("reads {bad}, which is not scheduled before it"));
            continue;
        }
        match infer_shape(graph, node) {
            Ok(shape) if shape != node.shape => err(format!("declared shape {} but computes {shape}", node.shape)),
            Ok(_) => {}
            Err(m) => err(m),
        }
        let writes = std::iter::once(match node.placement {
            Placement::Own => None,
            Placement::Slice { owner, channel_offset } => Some((owner, channel_offset)),
        })
        .flatten()
        .chain(node.tees.iter().map(|t| (t.owner, t.channel_offset)));
        for (owner, offset) in writes {
            let Some(o) = graph.nodes.get(owner) else {
                err(format!("placed into unknown node {owner}"));
                continue;
            };
            if o.placement != Placement::Own {
                err(format!("placed into {owner}, which is itself placed elsewhere"));
            } else if (o.shape.h, o.shape.w) != (node.shape.h, node.shape.w) || offset + node.shape.c > o.shape.c {
                err(format!("slice at channel {offset} of {} does not fit in {owner} ({})", node.shape, o.shape));
            } else if owner <= id && !matches!(o.op, Op::Concat) {
                err(format!("writes into {owner}, which is computed before it"));
            } else {
                slices[owner.index()].push((offset, offset + node.shape.c, id));
            }
        }
    }
    for (owner, mut ranges) in slices.into_iter().enumerate() {
        ranges.sort();
        for pair in ranges.windows(2) {
            if pair[1].0 < pair[0].1 {
                errors.push(format!("{} and {} both write channels of %{owner}", pair[0].2, pair[1].2));
            }
        }
    }
    for (kind, out) in &graph.outputs {
        if graph.nodes.get(*out).is_none() {
            errors.push(format!("output {} is unknown node {out}", kind.name()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(VerifyError(errors))
    }
}
