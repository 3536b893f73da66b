//! No concatenation copies: each part of a concat is stored by its producer
//! directly into its channel slice of the concat's buffer. When the concat
//! feeds a BatchNorm and an activation (`b1`, `bn_prelu_2`, `bn_prelu_3`), those
//! are split per slice and appended to each producer's epilogue. A producer
//! whose raw result is still needed elsewhere keeps its own buffer and *tees*
//! the normalised values into the slice in the same pass.

use super::slice_param;
use crate::ir::{Derivation, EpilogueStep, Graph, NodeId, Op, ParamId, Placement, Tee};

/// The per-channel steps that follow a concat, for the whole concat width.
enum Follow {
    None,
    Norm { scale: ParamId, shift: ParamId, act: Option<EpilogueStep>, last: NodeId },
}

pub fn run(graph: &mut Graph) -> usize {
    let mut rewrites = 0;
    for cat in graph.nodes.handles().collect::<Vec<_>>() {
        if !matches!(graph.nodes[cat].op, Op::Concat) || graph.nodes[cat].placement != Placement::Own {
            continue;
        }
        let users = graph.users();
        let follow = following_norm(graph, cat, &users);
        let parts = graph.nodes[cat].inputs.clone();
        let mut offset = 0;
        for (index, part) in parts.iter().copied().enumerate() {
            let c = graph.nodes[part].shape.c;
            let epilogue = match &follow {
                Follow::None => Vec::new(),
                Follow::Norm { scale, shift, act, .. } => {
                    let (scale, shift) = (
                        slice_param(graph, *scale, offset..offset + c),
                        slice_param(graph, *shift, offset..offset + c),
                    );
                    let mut steps = vec![EpilogueStep::Affine { scale, shift }];
                    steps.extend(match act {
                        Some(EpilogueStep::Prelu(slope)) => {
                            Some(EpilogueStep::Prelu(slice_param(graph, *slope, offset..offset + c)))
                        }
                        other => other.clone(),
                    });
                    steps
                }
            };
            let sole_reader = users[part.index()].len() == 1 && parts.iter().filter(|p| **p == part).count() == 1;
            let producer = &graph.nodes[part];
            let can_place = sole_reader
                && producer.placement == Placement::Own
                && !matches!(producer.op, Op::Input | Op::Concat)
                && !graph.outputs.iter().any(|(_, n)| *n == part);
            let producer = &mut graph.nodes[part];
            if can_place {
                producer.placement = Placement::Slice { owner: cat, channel_offset: offset };
                producer.epilogue.extend(epilogue);
            } else if !matches!(producer.op, Op::Input | Op::Concat) {
                producer.tees.push(Tee { owner: cat, channel_offset: offset, epilogue });
            } else {
                // Kept as a copy made by the concat itself; it cannot carry the norm.
                debug_assert!(matches!(follow, Follow::None));
            }
            debug_assert!(graph.concat_part_in_place(cat, index) || matches!(follow, Follow::None));
            offset += c;
        }
        if let Follow::Norm { last, .. } = follow {
            graph.replace_uses(last, cat);
        }
        graph.nodes[cat].name = graph.nodes[cat].name.trim_end_matches(".cat").to_string();
        rewrites += 1;
    }
    rewrites
}

/// A `batch_norm` (+ activation) that reads only this concat, as an affine map.
fn following_norm(graph: &mut Graph, cat: NodeId, users: &[Vec<NodeId>]) -> Follow {
    // The norm can move into producers only if every part can take an epilogue.
    let parts_ok = graph.nodes[cat].inputs.iter().all(|p| !matches!(graph.nodes[*p].op, Op::Input | Op::Concat));
    let [bn] = users[cat.index()][..] else { return Follow::None };
    let Op::BatchNorm { gamma, beta, mean, var, eps } = graph.nodes[bn].op else { return Follow::None };
    if !parts_ok || graph.is_output(cat) || graph.is_output(bn) {
        return Follow::None;
    }
    let c = graph.nodes[cat].shape.c;
    let name = graph.nodes[bn].name.clone();
    let stats = [gamma, beta, mean, var];
    let scale = graph.add_derived_param(format!("{name}.scale"), vec![c], Derivation::BnScale { bn: stats, eps });
    let shift = graph.add_derived_param(format!("{name}.shift"), vec![c], Derivation::BnShift { bn: stats, eps });
    let act = match users[bn.index()][..] {
        [act] if !graph.is_output(act) => match graph.nodes[act].op {
            Op::Prelu { slope } => Some((EpilogueStep::Prelu(slope), act)),
            Op::Relu => Some((EpilogueStep::Relu, act)),
            _ => None,
        },
        _ => None,
    };
    match act {
        Some((step, act)) => Follow::Norm { scale, shift, act: Some(step), last: act },
        None => Follow::Norm { scale, shift, act: None, last: bn },
    }
}
