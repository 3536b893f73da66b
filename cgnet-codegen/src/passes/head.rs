//! `argmax(upsample(logits))` -> `upsample_argmax(logits)` when the
//! full-resolution scores are not an output: they are never materialised.

use crate::ir::{Graph, Op};

pub fn run(graph: &mut Graph) -> usize {
    let users = graph.users();
    let mut rewrites = 0;
    for argmax in graph.nodes.handles().collect::<Vec<_>>() {
        if !matches!(graph.nodes[argmax].op, Op::Argmax) {
            continue;
        }
        let up = graph.nodes[argmax].inputs[0];
        let u = &graph.nodes[up];
        if !matches!(u.op, Op::Upsample)
            || users[up.index()].len() != 1
            || graph.is_output(up)
            || !u.epilogue.is_empty()
        {
            continue;
        }
        let logits = u.inputs[0];
        let node = &mut graph.nodes[argmax];
        node.op = Op::UpsampleArgmax;
        node.inputs = vec![logits];
        rewrites += 1;
    }
    rewrites
}
