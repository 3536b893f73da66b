//! Fusion passes: each one file, each `fn(&mut Graph) -> usize` (the number of
//! rewrites), run in a fixed order with compaction and the verifier after each.
//!
//! Passes never need weights: parameters they derive (folded convolutions,
//! per-slice affine maps) get values when their sources have values, and stay
//! unbound otherwise, so `cgnetc inspect` can plan a model without weights.

mod common_subexpressions;
mod depthwise_pair;
mod eliminate_concat;
mod fold_batch_norm;
mod fuse_activation;
mod global_context;
mod head;
mod split_concat_conv;

use serde::Serialize;

use crate::ir::{verify, Derivation, Graph, ParamId, VerifyError};

/// One rewrite of the pipeline.
pub struct Pass {
    pub name: &'static str,
    pub description: &'static str,
    pub run: fn(&mut Graph) -> usize,
}

/// The pipeline, in order. The order matters: F_loc/F_sur are paired before
/// their BatchNorm is folded into them; activations become epilogues before
/// concats are eliminated (which appends the concat's BN + activation to them).
/// Repeated work is merged first, so that no later pass fuses a copy of it.
pub const PIPELINE: [Pass; 8] = [
    Pass {
        name: "common-subexpressions",
        description: "a node that repeats an earlier one (the second input injection's first pool) reads its result instead",
        run: common_subexpressions::run,
    },
    Pass {
        name: "depthwise-pair",
        description: "F_loc and F_sur read their input once and write both halves of the joint feature",
        run: depthwise_pair::run,
    },
    Pass {
        name: "fold-batch-norm",
        description: "BatchNorm folded into the convolution before it (bias created)",
        run: fold_batch_norm::run,
    },
    Pass {
        name: "fuse-activation",
        description: "PReLU / ReLU applied as the producer's epilogue",
        run: fuse_activation::run,
    },
    Pass {
        name: "eliminate-concat",
        description: "producers write channel slices of the concat buffer; the BN + activation after it is split per slice into their epilogues",
        run: eliminate_concat::run,
    },
    Pass {
        name: "global-context",
        description: "F_glo (average, FC, ReLU, FC, sigmoid, scale) and the global residual add as one node",
        run: global_context::run,
    },
    Pass {
        name: "split-concat-conv",
        description: "a convolution over a concat whose parts are produced far apart runs per part, each adding onto the sums so far, right after its part: no concat buffer",
        run: split_concat_conv::run,
    },
    Pass {
        name: "head",
        description: "bilinear x8 upsample fused with argmax when only labels are wanted",
        run: head::run,
    },
];

/// What one pass did.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub pass: &'static str,
    pub rewrites: usize,
    pub description: &'static str,
}

/// Runs the pipeline (or its first `stop_after` passes, to bisect a wrong
/// result), compacting and verifying after every pass.
pub fn optimize(graph: &Graph, stop_after: Option<usize>) -> Result<(Graph, Vec<Applied>), VerifyError> {
    let mut graph = graph.clone();
    let mut applied = Vec::new();
    for pass in PIPELINE.iter().take(stop_after.unwrap_or(PIPELINE.len())) {
        let rewrites = (pass.run)(&mut graph);
        graph = graph.compact();
        verify(&graph).map_err(|VerifyError(mut e)| {
            e.insert(0, format!("after pass `{}`:", pass.name));
            VerifyError(e)
        })?;
        applied.push(Applied { pass: pass.name, rewrites, description: pass.description });
    }
    Ok((graph, applied))
}

/// Channels `range` of a per-channel parameter, as a derived parameter.
pub(crate) fn slice_param(graph: &mut Graph, p: ParamId, range: std::ops::Range<usize>) -> ParamId {
    let key = format!("{}[{}..{}]", graph.params[p].key, range.start, range.end);
    let len = range.len();
    graph.add_derived_param(key, vec![len], Derivation::Slice { of: p, start: range.start, len })
}
