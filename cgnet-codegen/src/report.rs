//! `cgnetc inspect`: what a researcher reads about a model: parameters, MACs
//! per layer, every tensor with its shape.

use serde::Serialize;

use crate::back::program::Compilation;
use crate::ir::{Graph, ParamKind};
use crate::passes::Applied;
use crate::plan::Plan;
use crate::spec::ModelSpec;

#[derive(Debug, Serialize)]
pub struct Layer {
    pub node: String,
    pub name: String,
    pub op: &'static str,
    pub shape: [usize; 3],
    /// Learnable parameters read by this node (BatchNorm statistics excluded).
    pub parameters: usize,
    pub macs: u64,
}

#[derive(Debug, Serialize)]
pub struct InspectReport {
    pub model: String,
    pub spec: ModelSpec,
    pub parameters: usize,
    /// Convolution and fully-connected multiply-adds of one inference.
    pub macs: u64,
    /// Bytes of the one arena every backend emits (`ARENA_BYTES`): the planned
    /// buffers plus F_glo's scratch. Input and outputs live in the caller's memory.
    pub arena_bytes: usize,
    /// The planned buffers alone, and their lower bound (the largest total live at one step).
    pub plan_bytes: usize,
    pub arena_lower_bound_bytes: usize,
    /// F_glo's row sums, means and scales, after the planned buffers.
    pub scratch_bytes: usize,
    pub unshared_bytes: usize,
    /// The passes run and how many rewrites each made.
    pub fusions: Vec<Applied>,
    /// Layers of the authors' model (unfused), with MACs.
    pub layers: Vec<Layer>,
    /// Nodes of the fused program.
    pub fused_nodes: usize,
    /// Kernel steps of the body.
    pub steps: usize,
    /// The groups of more than one step that the CPU backends run chunk by chunk.
    pub step_groups: Vec<StepGroup>,
    pub plan: Plan,
}

/// Consecutive kernel steps that the CPU backends run chunk by chunk: each
/// chunk of rows through all of them on one thread (`back::program::groups`).
#[derive(Debug, Serialize)]
pub struct StepGroup {
    /// The steps' indices, `first..end`.
    pub first: usize,
    pub end: usize,
    /// Each step's kind, as `cgnetc bench --profile` names it.
    pub kinds: Vec<String>,
}

impl InspectReport {
    /// `graph` is the unfused graph; `compiled` what the backends emit from it.
    pub fn new(spec: &ModelSpec, graph: &Graph, compiled: Compilation) -> Self {
        let Compilation { model, fused, fusions, plan } = compiled;
        let layers = graph
            .nodes
            .iter()
            .map(|(id, node)| Layer {
                node: id.to_string(),
                name: node.name.clone(),
                op: node.op.mnemonic(),
                shape: [node.shape.c, node.shape.h, node.shape.w],
                parameters: node
                    .params()
                    .iter()
                    .filter(|p| graph.params[**p].kind == ParamKind::Learnable)
                    .map(|p| graph.params[*p].len())
                    .sum(),
                macs: graph.node_macs(id),
            })
            .collect();
        Self {
            model: spec.model_name().to_string(),
            spec: spec.clone(),
            parameters: graph.learnable_parameters(),
            macs: graph.total_macs(),
            arena_bytes: model.arena_bytes,
            plan_bytes: plan.arena_bytes,
            arena_lower_bound_bytes: plan.arena_lower_bound_bytes,
            scratch_bytes: model.arena_bytes - plan.arena_bytes.next_multiple_of(crate::plan::ALIGN),
            unshared_bytes: plan.unshared_bytes,
            fusions,
            layers,
            fused_nodes: fused.nodes.len(),
            steps: model.steps.len(),
            step_groups: {
                // A group of a streamed region is called once per band: listed once.
                let mut groups: Vec<std::ops::Range<usize>> =
                    model.calls.iter().map(|call| call.steps.clone()).filter(|g| g.len() > 1).collect();
                groups.dedup();
                groups
                    .into_iter()
                    .map(|g| StepGroup {
                        first: g.start,
                        end: g.end,
                        kinds: model.steps[g.clone()].iter().map(|s| s.kind()).collect(),
                    })
                    .collect()
            },
            plan,
        }
    }

    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let s = &self.spec;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "model {}: {} classes, M={} N={}, residual {:?}, injection {}, {:?}, global context {}, input 3x{}x{}",
            self.model,
            s.classes,
            s.stage2_blocks,
            s.stage3_blocks,
            s.residual,
            s.input_injection,
            s.activation,
            s.global_context,
            s.height,
            s.width
        );
        let (mean, std) = s.normalisation();
        let _ = writeln!(out, "input pixels (0..255, RGB): minus {mean:?}, divided by {std:?}");
        let names: Vec<String> = s.class_labels().into_iter().map(|l| l.name).collect();
        let _ = writeln!(out, "classes: {}", names.join(", "));
        let _ = writeln!(out, "parameters: {}", self.parameters);
        let _ = writeln!(out, "MACs: {} ({:.3} GMAC)", self.macs, self.macs as f64 / 1e9);
        let _ = writeln!(out, "\nfusions ({} unfused nodes -> {} fused):", self.layers.len(), self.fused_nodes);
        for f in &self.fusions {
            let _ = writeln!(out, "  {:<18} {:>4} rewrites  {}", f.pass, f.rewrites, f.description);
        }
        let grouped: usize = self.step_groups.iter().map(|g| g.end - g.first).sum();
        let _ = writeln!(
            out,
            "\nkernel steps: {}, run as {} groups on the CPU; {grouped} of them in these {} groups of several, \
             run chunk by chunk (each chunk of rows through all of the group's steps on one thread):",
            self.steps,
            self.steps - grouped + self.step_groups.len(),
            self.step_groups.len()
        );
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for group in &self.step_groups {
            let kind = group.kinds.join(" + ");
            match kinds.iter_mut().find(|k| k.0 == kind) {
                Some(k) => k.1 += 1,
                None => kinds.push((kind, 1)),
            }
        }
        for (kind, count) in kinds {
            let _ = writeln!(out, "  {count:>4} x {kind}");
        }
        let _ = writeln!(
            out,
            "\narena (ARENA_BYTES of the CPU backends; the GPU targets run without streamed regions): {} bytes = planned buffers {} + F_glo scratch {}",
            self.arena_bytes,
            self.arena_bytes - self.scratch_bytes,
            self.scratch_bytes
        );
        let _ = write!(out, "{}", self.plan.to_text());
        let _ = writeln!(
            out,
            "\n{:<6} {:<28} {:<16} {:>14} {:>10} {:>14}",
            "node", "layer", "op", "shape", "params", "MACs"
        );
        for l in &self.layers {
            let shape = format!("{}x{}x{}", l.shape[0], l.shape[1], l.shape[2]);
            let _ = writeln!(
                out,
                "{:<6} {:<28} {:<16} {:>14} {:>10} {:>14}",
                l.node, l.name, l.op, shape, l.parameters, l.macs
            );
        }
        out
    }
}
