//! F_glo as one node: `x * sigmoid(fc2(relu(fc1(mean(x)))))`, and when the
//! block's global residual adds it to the block input, that add too.
//! Emitters accumulate the mean in the producer of `x` and apply scale and
//! residual in one pass over `x`.

use crate::ir::{GlobalContext, Graph, NodeId, Op, Placement};

pub fn run(graph: &mut Graph) -> usize {
    let mut rewrites = 0;
    // Computed once (not per node: that made the pass quadratic, 1.4 s at 256
    // blocks per stage). A rewrite only drops readers inside its own F_glo chain,
    // which no other match looks at.
    let users = graph.users();
    for scale in graph.nodes.handles().collect::<Vec<_>>() {
        let Some((x, gc)) = match_f_glo(graph, &users, scale) else { continue };
        let node = &mut graph.nodes[scale];
        node.op = Op::GlobalContext(gc);
        node.inputs = vec![x];
        rewrites += 1;
    }
    // Fold `add(residual, global_context(x))` into the global-context node.
    let users = graph.users();
    for add in graph.nodes.handles().collect::<Vec<_>>() {
        let n = &graph.nodes[add];
        let (Op::Add, [r, g]) = (&n.op, n.inputs.as_slice()) else { continue };
        let (r, g) = (*r, *g);
        let gn = &graph.nodes[g];
        let Op::GlobalContext(gc) = gn.op else { continue };
        if gn.inputs.len() != 1
            || users[g.index()].len() != 1
            || !gn.epilogue.is_empty()
            || !gn.tees.is_empty()
            || gn.placement != Placement::Own
            || graph.is_output(g)
        {
            continue;
        }
        let (x, name) = (gn.inputs[0], format!("{} + residual", gn.name));
        let node = &mut graph.nodes[add];
        node.op = Op::GlobalContext(gc);
        node.inputs = vec![x, r];
        node.name = name;
        rewrites += 1;
    }
    rewrites
}

/// Matches `channel_scale(x, sigmoid(linear(relu(linear(global_avg_pool(x))))))`
/// where the intermediate nodes have no other readers.
fn match_f_glo(graph: &Graph, users: &[Vec<NodeId>], scale: NodeId) -> Option<(NodeId, GlobalContext)> {
    let node = &graph.nodes[scale];
    let (Op::ChannelScale, [x, s]) = (&node.op, node.inputs.as_slice()) else { return None };
    let single = |n: NodeId| users[n.index()].len() == 1 && !graph.is_output(n) && graph.nodes[n].epilogue.is_empty();
    let input_of = |n: NodeId, want: fn(&Op) -> bool| -> Option<NodeId> {
        let node = &graph.nodes[n];
        (want(&node.op) && single(n)).then(|| node.inputs[0])
    };
    let fc2_node = input_of(*s, |op| matches!(op, Op::Sigmoid))?;
    let relu = input_of(fc2_node, |op| matches!(op, Op::Linear { .. }))?;
    let fc1_node = input_of(relu, |op| matches!(op, Op::Relu))?;
    let gap = input_of(fc1_node, |op| matches!(op, Op::Linear { .. }))?;
    let gap_input = input_of(gap, |op| matches!(op, Op::GlobalAvgPool))?;
    let (Op::Linear { weight: w1, bias: b1 }, Op::Linear { weight: w2, bias: b2 }) =
        (&graph.nodes[fc1_node].op, &graph.nodes[fc2_node].op)
    else {
        return None;
    };
    (gap_input == *x).then_some((*x, GlobalContext { fc1_weight: *w1, fc1_bias: *b1, fc2_weight: *w2, fc2_bias: *b2 }))
}
