//! The fixed buffer plan: every intermediate tensor at a constant offset of
//! one arena whose size is known at compile time.
//!
//! The schedule is the node order. A buffer is live from the first step that
//! writes it (its owner, a producer placed into it, or a tee) to the last step
//! that reads it. Offsets are assigned greedily, largest buffer first, each
//! into the best-fitting gap among the buffers live at the same time.
//! The graph input and the outputs live outside the arena (the caller's memory).

use serde::Serialize;

use crate::ir::{Graph, NodeId, Op};

/// Alignment of every buffer: a cache line, and the widest SIMD load.
pub const ALIGN: usize = 64;

#[derive(Clone, Debug, Serialize)]
pub struct Buffer {
    /// The node that owns the buffer (`%12`).
    pub node: String,
    pub name: String,
    pub offset: usize,
    pub bytes: usize,
    /// First and last step (node index) at which the buffer is live.
    pub first: usize,
    pub last: usize,
    #[serde(skip)]
    pub owner: NodeId,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub arena_bytes: usize,
    /// The largest total of buffers live at any one step: no plan can do better.
    pub arena_lower_bound_bytes: usize,
    /// What the buffers would take without sharing.
    pub unshared_bytes: usize,
    pub buffers: Vec<Buffer>,
}

impl Plan {
    /// Arena offset (bytes) of each node's buffer, indexed by node; `None` for
    /// nodes that own no arena buffer.
    pub fn offsets(&self, graph: &Graph) -> Vec<Option<usize>> {
        let mut offsets = vec![None; graph.nodes.len()];
        for b in &self.buffers {
            offsets[b.owner.index()] = Some(b.offset);
        }
        offsets
    }

    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let ratio = self.arena_bytes as f64 / self.arena_lower_bound_bytes.max(1) as f64;
        let _ = writeln!(
            out,
            "planned buffers: {} bytes ({:.2} MB); lower bound {} bytes ({ratio:.3}x of it); unshared {} bytes",
            self.arena_bytes,
            self.arena_bytes as f64 / 1e6,
            self.arena_lower_bound_bytes,
            self.unshared_bytes
        );
        let _ = writeln!(out, "{:<6} {:>12} {:>12} {:>11}  name", "buffer", "offset", "bytes", "live");
        for b in &self.buffers {
            let live = format!("{}..={}", b.first, b.last);
            let _ = writeln!(out, "{:<6} {:>12} {:>12} {:>11}  {}", b.node, b.offset, b.bytes, live, b.name);
        }
        out
    }
}

/// Live ranges `(first, last)` of every buffer owner, indexed by node.
pub fn live_ranges(graph: &Graph) -> Vec<Option<(usize, usize)>> {
    let mut ranges: Vec<Option<(usize, usize)>> = vec![None; graph.nodes.len()];
    let mut touch = |owner: NodeId, step: usize| {
        let r = ranges[owner.index()].get_or_insert((step, step));
        r.0 = r.0.min(step);
        r.1 = r.1.max(step);
    };
    for (id, node) in graph.nodes.iter() {
        let step = id.index();
        touch(graph.storage_owner(id), step);
        for tee in &node.tees {
            touch(tee.owner, step);
        }
        for (index, input) in node.inputs.iter().enumerate() {
            let in_place = matches!(node.op, Op::Concat) && graph.concat_part_in_place(id, index);
            if !in_place {
                touch(graph.storage_owner(*input), step);
            }
        }
    }
    ranges
}

/// Plans every buffer of a verified graph; the input and the outputs live in
/// the caller's memory.
pub fn plan(graph: &Graph) -> Plan {
    plan_with(graph, false)
}

/// Plans every buffer; with `outputs_in_arena` the outputs get arena buffers
/// too (live to the end), for programs that finish them in a later step.
pub fn plan_with(graph: &Graph, outputs_in_arena: bool) -> Plan {
    let mut external = vec![graph.input];
    if !outputs_in_arena {
        external.extend(graph.outputs.iter().map(|(_, n)| graph.storage_owner(*n)));
    }
    let mut ranges = live_ranges(graph);
    if outputs_in_arena {
        let end = graph.nodes.len().saturating_sub(1);
        for (_, out) in &graph.outputs {
            if let Some(r) = &mut ranges[graph.storage_owner(*out).index()] {
                r.1 = end;
            }
        }
    }
    let mut buffers: Vec<Buffer> = graph
        .nodes
        .iter()
        .filter(|(id, _)| graph.storage_owner(*id) == *id && !external.contains(id))
        .filter_map(|(id, node)| {
            let (first, last) = ranges[id.index()]?;
            Some(Buffer {
                node: id.to_string(),
                name: node.name.clone(),
                offset: 0,
                bytes: graph.buffer_bytes(id).next_multiple_of(ALIGN),
                first,
                last,
                owner: id,
            })
        })
        .collect();

    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].bytes), buffers[i].first));
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_bytes = 0;
    for i in order {
        let b = &buffers[i];
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .map(|&j| &buffers[j])
            .filter(|o| o.first <= b.last && b.first <= o.last)
            .map(|o| (o.offset, o.offset + o.bytes))
            .collect();
        busy.sort();
        // Best fit: the smallest gap that holds the buffer, else the top.
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0;
        for (start, end) in busy.iter().copied().chain(std::iter::once((usize::MAX, usize::MAX))) {
            if start >= cursor + b.bytes {
                let gap = start.saturating_sub(cursor);
                if best.is_none_or(|(size, _)| gap < size) {
                    best = Some((gap, cursor));
                }
            }
            cursor = cursor.max(end);
        }
        let offset = best.map_or(cursor, |(_, o)| o);
        buffers[i].offset = offset;
        arena_bytes = arena_bytes.max(offset + buffers[i].bytes);
        placed.push(i);
    }

    let steps = graph.nodes.len();
    let arena_lower_bound_bytes = (0..steps)
        .map(|s| buffers.iter().filter(|b| b.first <= s && s <= b.last).map(|b| b.bytes).sum::<usize>())
        .max()
        .unwrap_or(0);
    let unshared_bytes = buffers.iter().map(|b| b.bytes).sum();
    Plan { arena_bytes, arena_lower_bound_bytes, unshared_bytes, buffers }
}

/// Pairs of buffers that are live at the same step and overlap in the arena
/// (a correct plan has none).
pub fn conflicts(plan: &Plan) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, a) in plan.buffers.iter().enumerate() {
        for b in &plan.buffers[i + 1..] {
            let in_time = a.first <= b.last && b.first <= a.last;
            let in_space = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
            if in_time && in_space {
                out.push((a.node.clone(), b.node.clone()));
            }
        }
    }
    out
}
