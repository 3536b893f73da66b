//! A convolution over a concat whose parts are produced far apart (the
//! stage-2 output: the down block's result early, the last block's late) is
//! split over its input channels into one convolution per part, each adding
//! onto the sums of the ones before (`Conv2d` with an addend), scheduled
//! right after its part is produced. The concat buffer goes away: a part
//! lives only until its convolution has read it, and what lives on is the
//! sums, at the (strided) output's size. Each part keeps the concat's
//! BatchNorm + activation slice in its epilogue (or tee), as before.
//!
//! Only where some other node runs between the first part's producer and
//! the convolution (otherwise nothing would die earlier), and not for a
//! convolution run as Winograd.

use crate::ir::{Derivation, Graph, Node, NodeId, Op, Placement, Tee};

pub fn run(graph: &mut Graph) -> usize {
    let mut rewrites = 0;
    // New nodes, each to be scheduled right after the node it follows.
    let mut after: Vec<(NodeId, NodeId)> = Vec::new();
    for conv in graph.nodes.handles().collect::<Vec<_>>() {
        let Some(parts) = split_parts(graph, conv) else { continue };
        let Op::Conv2d(c) = graph.nodes[conv].op.clone() else { continue };
        let cat = graph.nodes[conv].inputs[0];
        let name = graph.nodes[conv].name.clone();
        // Each part's values in a buffer of its own, with the producer that writes them.
        let mut values: Vec<(NodeId, NodeId, usize, usize)> = Vec::new(); // (value, producer, start, len)
        let mut offset = 0;
        for (index, part) in parts.iter().copied().enumerate() {
            let len = graph.nodes[part].shape.c;
            if graph.storage_owner(part) == cat {
                graph.nodes[part].placement = Placement::Own;
                values.push((part, part, offset, len));
            } else {
                // A teed part: its tee goes to a buffer of its own (a concat of one part).
                let shape = graph.nodes[part].shape;
                let own = Node::new(Op::Concat, vec![part], shape, format!("{}.part{index}", graph.nodes[cat].name));
                let own = graph.nodes.push(own);
                after.push((own, part));
                let tee = graph.nodes[part].tees.iter_mut().find(|t| t.owner == cat && t.channel_offset == offset);
                let tee = tee.expect("split_parts checks that every part is in place");
                *tee = Tee { owner: own, channel_offset: 0, epilogue: std::mem::take(&mut tee.epilogue) };
                values.push((own, part, offset, len));
            }
            offset += len;
        }
        // In the order the parts are produced: the earliest part's sums first.
        values.sort_by_key(|(_, producer, _, _)| *producer);
        let ci = graph.nodes[cat].shape.c;
        let per_in = c.kernel * c.kernel;
        let shape = graph.nodes[conv].shape;
        let mut sums: Option<NodeId> = None;
        for (j, (value, _, start, len)) in values.iter().copied().enumerate() {
            let key = format!("{}[:, {start}..{}]", graph.params[c.weight].key, start + len);
            let w_shape = vec![shape.c, len, c.kernel, c.kernel];
            let derivation = Derivation::SliceInputs { of: c.weight, ci, per_in, start, len };
            let weight = graph.add_derived_param(key, w_shape, derivation);
            // The bias once, in the first part; the others start from the sums.
            let part_conv = crate::ir::Conv { weight, bias: if j == 0 { c.bias } else { None }, ..c };
            let inputs: Vec<NodeId> = std::iter::once(value).chain(sums).collect();
            if j + 1 == values.len() {
                let node = &mut graph.nodes[conv];
                node.op = Op::Conv2d(part_conv);
                node.inputs = inputs;
            } else {
                let node = Node::new(Op::Conv2d(part_conv), inputs, shape, format!("{name}.part{j}"));
                let id = graph.nodes.push(node);
                // After the part (its producer, or a teed part's own buffer).
                after.push((id, value));
                sums = Some(id);
            }
        }
        rewrites += 1;
    }
    if rewrites > 0 {
        *graph = graph.reordered(&schedule(graph, &after));
    }
    rewrites
}

/// The parts of the concat that `conv` reads, when it is split (see the module docs).
fn split_parts(graph: &Graph, conv: NodeId) -> Option<Vec<NodeId>> {
    let node = &graph.nodes[conv];
    let Op::Conv2d(c) = &node.op else { return None };
    let [cat] = node.inputs[..] else { return None };
    let concat = &graph.nodes[cat];
    let parts = concat.inputs.clone();
    let in_place = (0..parts.len()).all(|i| graph.concat_part_in_place(cat, i));
    let sole_reader = graph.users()[cat.index()] == [conv];
    let distinct = parts.iter().enumerate().all(|(i, p)| !parts[..i].contains(p));
    let winograd = crate::back::program::uses_winograd(c, concat.shape.c, node.shape.c);
    if !matches!(concat.op, Op::Concat)
        || concat.placement != Placement::Own
        || parts.len() < 2
        || !in_place
        || !sole_reader
        || !distinct
        || winograd
        || c.groups != 1
        || graph.is_output(cat)
    {
        return None;
    }
    // Some other node runs between the first part and the convolution.
    let first = parts.iter().map(|p| p.index()).min()?;
    let foreign = (first + 1..conv.index()).any(|i| i != cat.index() && !parts.iter().any(|p| p.index() == i));
    foreign.then_some(parts)
}

/// Every node in arena order, each node of `after` moved to right after the
/// node it follows (in the order they were made).
fn schedule(graph: &Graph, after: &[(NodeId, NodeId)]) -> Vec<NodeId> {
    let moved: Vec<NodeId> = after.iter().map(|(n, _)| *n).collect();
    let mut order = Vec::with_capacity(graph.nodes.len());
    fn place(id: NodeId, after: &[(NodeId, NodeId)], order: &mut Vec<NodeId>) {
        order.push(id);
        for (n, _) in after.iter().filter(|(_, a)| *a == id) {
            place(*n, after, order);
        }
    }
    for id in graph.nodes.handles().filter(|id| !moved.contains(id)) {
        place(id, after, &mut order);
    }
    order
}
