//! `batch_norm(conv(x))` -> `conv'(x)` with `w' = w * s` and `b' = (b - mean) * s + beta`,
//! `s = gamma / sqrt(var + eps)`, per output channel. BatchNorms after a
//! concat are left to `eliminate_concat`.

use super::{batch_norm_affine, derive};
use crate::ir::{Conv, Graph, Op};

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
        let bn_params = [gamma, beta, mean, var];
        // Each conv covers output channels `start..start + out` of the BatchNorm.
        let fold = |graph: &mut Graph, conv: Conv, start: usize, out: usize| -> Conv {
            let w = conv.weight;
            let per_out = graph.params[w].len() / out;
            let key = graph.params[w].key.clone();
            let shape = graph.params[w].shape.clone();
            let mut sources = bn_params.to_vec();
            sources.push(w);
            let range = start..start + out;
            let r = range.clone();
            let weight = derive(graph, format!("{key}*bn"), shape, &sources, |v| {
                let (scale, _) = batch_norm_affine(v[0], v[1], v[2], v[3], eps);
                v[4].iter().enumerate().map(|(i, w)| w * scale[r.start + i / per_out]).collect()
            });
            if let Some(b) = conv.bias {
                sources.push(b);
            }
            let bias_key = format!("{}.folded_bias", key.trim_end_matches(".weight"));
            let has_bias = conv.bias.is_some();
            let bias = derive(graph, bias_key, vec![out], &sources, |v| {
                let (scale, shift) = batch_norm_affine(v[0], v[1], v[2], v[3], eps);
                range.map(|c| shift[c] + if has_bias { v[5][c - start] * scale[c] } else { 0.0 }).collect()
            });
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
