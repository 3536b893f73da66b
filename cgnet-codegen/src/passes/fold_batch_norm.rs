//! `batch_norm(conv(x))` -> `conv'(x)` with `w' = w * s` and `b' = (b - mean) * s + beta`,
//! `s = gamma / sqrt(var + eps)`, per output channel. BatchNorms after a
//! concat are left to `eliminate_concat`.

use crate::ir::{Conv, Derivation, Graph, Op};

pub fn run(graph: &mut Graph) -> usize {
    let users = graph.users();
    let mut rewrites = 0;
    for bn in graph.nodes.handles().collect::<Vec<_>>() {
        let Op::BatchNorm { gamma, beta, mean, var, eps } = graph.nodes[bn].op else { continue };
        let producer = graph.nodes[bn].inputs[0];
        let p = &graph.nodes[producer];
        if users[producer.index()].len() != 1
            || !p.epilogue.is_empty()
            || !p.tees.is_empty()
            || graph.is_output(producer)
        {
            continue;
        }
        let stats = [gamma, beta, mean, var];
        // Each conv covers output channels `start..start + out` of the BatchNorm.
        let fold = |graph: &mut Graph, conv: Conv, start: usize, out: usize| -> Conv {
            let w = conv.weight;
            let per_out = graph.params[w].len() / out;
            let key = graph.params[w].key.clone();
            let shape = graph.params[w].shape.clone();
            let how = Derivation::FoldWeight { weight: w, bn: stats, eps, start, per_out };
            let weight = graph.add_derived_param(format!("{key}*bn"), shape, how);
            let bias_key = format!("{}.folded_bias", key.trim_end_matches(".weight"));
            let how = Derivation::FoldBias { bn: stats, eps, bias: conv.bias, start, len: out };
            let bias = graph.add_derived_param(bias_key, vec![out], how);
            Conv { weight, bias: Some(bias), ..conv }
        };
        let op = match p.op.clone() {
            Op::Conv2d(c) => {
                let out = p.shape.c;
                Op::Conv2d(fold(graph, c, 0, out))
            }
            Op::DepthwisePair { loc, sur } => {
                let half = p.shape.c / 2;
                let loc = fold(graph, loc, 0, half);
                Op::DepthwisePair { loc, sur: fold(graph, sur, half, half) }
            }
            _ => continue,
        };
        let (inputs, name) = (graph.nodes[producer].inputs.clone(), graph.nodes[producer].name.clone());
        let node = &mut graph.nodes[bn];
        node.op = op;
        node.inputs = inputs;
        node.name = name;
        rewrites += 1;
    }
    rewrites
}
