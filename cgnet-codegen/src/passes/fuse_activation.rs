//! `prelu(x)` / `relu(x)` -> an epilogue step of `x`'s producer, when nothing
//! else reads the producer's raw result.

use crate::ir::{EpilogueStep, Graph, Op, Placement};

pub fn run(graph: &mut Graph) -> usize {
    let users = graph.users();
    let mut rewrites = 0;
    for act in graph.nodes.handles().collect::<Vec<_>>() {
        let step = match graph.nodes[act].op {
            Op::Prelu { slope } => EpilogueStep::Prelu(slope),
            Op::Relu => EpilogueStep::Relu,
            _ => continue,
        };
        let producer = graph.nodes[act].inputs[0];
        let p = &graph.nodes[producer];
        let fusable_op = matches!(p.op, Op::Conv2d(_) | Op::DepthwisePair { .. } | Op::AvgPool | Op::Add);
        if !fusable_op
            || users[producer.index()].len() != 1
            || graph.is_output(producer)
            || p.placement != Placement::Own
            || !p.tees.is_empty()
        {
            continue;
        }
        // The producer moves to the activation's place in the schedule, so
        // that every handle stays in order; nothing ran in between that reads it.
        let mut fused = graph.nodes[producer].clone();
        fused.epilogue.push(step);
        graph.nodes[act] = fused;
        rewrites += 1;
    }
    rewrites
}
