//! `concat(F_loc(x), F_sur(x))` -> one `depthwise_pair` node that reads `x`
//! once and writes both halves of the joint feature.

use crate::ir::{Graph, NodeId, Op};

pub fn run(graph: &mut Graph) -> usize {
    let users = graph.users();
    let mut rewrites = 0;
    for cat in graph.nodes.handles().collect::<Vec<_>>() {
        let node = &graph.nodes[cat];
        let (Op::Concat, [a, b]) = (&node.op, node.inputs.as_slice()) else { continue };
        let (a, b) = (*a, *b);
        let (Op::Conv2d(loc), Op::Conv2d(sur)) = (&graph.nodes[a].op, &graph.nodes[b].op) else { continue };
        let x = graph.nodes[a].inputs[0];
        let channels = graph.nodes[x].shape.c;
        let depthwise =
            |c: &crate::ir::Conv| c.groups == channels && c.stride == 1 && c.kernel == 3 && c.bias.is_none();
        let plain = |n: NodeId| users[n.index()].len() == 1 && graph.nodes[n].epilogue.is_empty();
        if graph.nodes[b].inputs[0] != x
            || !depthwise(loc)
            || !depthwise(sur)
            || graph.nodes[a].shape.c != channels
            || !plain(a)
            || !plain(b)
        {
            continue;
        }
        let op = Op::DepthwisePair { loc: *loc, sur: *sur };
        let name = format!("{} + {}", graph.nodes[a].name, graph.nodes[b].name);
        let node = &mut graph.nodes[cat];
        node.op = op;
        node.inputs = vec![x];
        node.name = name;
        rewrites += 1;
    }
    rewrites
}
