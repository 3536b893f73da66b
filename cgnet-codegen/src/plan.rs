//! The fixed buffer plan: every intermediate tensor at a constant offset of
//! one arena whose size is known at compile time.
//!
//! The schedule is the node order. A buffer is live from the first step that
//! writes it (its owner, a producer placed into it, or a tee) to the last step
//! that reads it. Offsets are assigned greedily, largest buffer first, each
//! into the best-fitting gap among the buffers live at the same time.
//!
//! A node whose last kernel is elementwise (F_glo's excitation with the
//! residual add, an add), or a convolution onto an addend (its addend),
//! stores its result in place of an input that dies at that step, when the two
//! have one shape: each output element is written after the same element of
//! the input was read, by the same thread. Such
//! buffers form one *slot*, planned as one interval; the stage's chain of
//! blocks then takes one buffer instead of alternating two.
//! The graph input and the outputs live outside the arena (the caller's memory).

use serde::Serialize;

use crate::ir::{Graph, NodeId, Op};
use crate::stream::{self, Region, Streaming};

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
    /// The buffer (`%9`) whose storage this one takes over at its first step,
    /// the step that reads that buffer for the last time.
    pub in_place_of: Option<String>,
    /// A ring's slots: the buffer holds that many rows of its tensor (see
    /// [`crate::stream`]); `None` for a whole tensor.
    pub ring_rows: Option<usize>,
    #[serde(skip)]
    pub owner: NodeId,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub arena_bytes: usize,
    /// The largest total of buffers live at any one step: no plan of these
    /// buffers can do better.
    pub arena_lower_bound_bytes: usize,
    /// The same bound for the schedule without streamed regions (every buffer
    /// whole): what streaming brought the bound down from.
    pub unstreamed_lower_bound_bytes: usize,
    /// The (first) step at which `arena_lower_bound_bytes` are live.
    pub peak_step: usize,
    /// What the buffers would take without sharing.
    pub unshared_bytes: usize,
    pub buffers: Vec<Buffer>,
    /// The streamed regions' nodes (schedule steps), in order.
    pub regions: Vec<std::ops::Range<usize>>,
    /// Bytes live at each schedule step.
    #[serde(skip)]
    pub live_bytes: Vec<usize>,
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

    /// Bytes of the buffers live at schedule step `step`.
    pub fn live_at(&self, step: usize) -> usize {
        self.live_bytes.get(step).copied().unwrap_or(0)
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
        if !self.regions.is_empty() {
            let regions: Vec<String> = self.regions.iter().map(|r| format!("{}..={}", r.start, r.end - 1)).collect();
            let _ = writeln!(
                out,
                "streamed regions (steps computed band by band): {}; lower bound without them {} bytes ({:.2} MB)",
                regions.join(", "),
                self.unstreamed_lower_bound_bytes,
                self.unstreamed_lower_bound_bytes as f64 / 1e6
            );
        }
        let _ = writeln!(out, "{:<6} {:>12} {:>12} {:>11}  name", "buffer", "offset", "bytes", "live");
        for b in &self.buffers {
            let live = format!("{}..={}", b.first, b.last);
            let reuse = b.in_place_of.as_ref().map(|of| format!(" (in place of {of})")).unwrap_or_default();
            let ring = b.ring_rows.map(|r| format!(" (ring of {r} rows)")).unwrap_or_default();
            let _ =
                writeln!(out, "{:<6} {:>12} {:>12} {:>11}  {}{reuse}{ring}", b.node, b.offset, b.bytes, live, b.name);
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
    plan_regions(graph, outputs_in_arena, &[])
}

/// [`plan_with`], streaming runs of the graph as `streaming` says (see
/// [`crate::stream`]): the plan and the streamed regions, in node order. The
/// plan's `unstreamed_lower_bound_bytes` is that of the plan without them.
pub fn plan_streamed(graph: &Graph, outputs_in_arena: bool, streaming: Streaming) -> (Plan, Vec<Region>) {
    // Off: no run to stream.
    let runs = if streaming == Streaming::Off { Vec::new() } else { stream::runs(graph) };
    let mut regions: Vec<Region> = Vec::new();
    let whole = plan_regions(graph, outputs_in_arena, &regions);
    let mut plan = whole.clone();
    loop {
        // The best stretch of the run that holds the peak: the one that
        // lowers the bytes live at the peak step most. (Streamed, a region keeps
        // its other buffers live through all of it: a whole run can cost more
        // than its rings save.) Several steps may share the peak: streaming one
        // need not lower the bound, only not raise it.
        let peak = plan.peak_step;
        let Some(run) = runs.iter().find(|r| r.contains(&peak)) else { break };
        let mut best: Option<(Plan, Vec<Region>)> = None;
        for first in run.start..=peak {
            for end in peak + 1..=run.end {
                if regions.iter().any(|g| g.nodes.start < end && first < g.nodes.end) {
                    continue;
                }
                let Some(region) = stream::schedule(graph, first..end) else { continue };
                if streaming == Streaming::Auto && region.saving(graph) < stream::MIN_SAVING {
                    continue;
                }
                let mut more = regions.clone();
                more.push(region);
                more.sort_by_key(|r| r.nodes.start);
                let next = plan_regions(graph, outputs_in_arena, &more);
                let key = |p: &Plan| (p.live_at(peak), p.arena_lower_bound_bytes);
                let better = next.arena_lower_bound_bytes <= plan.arena_lower_bound_bytes
                    && next.live_at(peak) < plan.live_at(peak)
                    && best.as_ref().is_none_or(|(b, _)| key(&next) < key(b));
                if better {
                    best = Some((next, more));
                }
            }
        }
        let Some((next, more)) = best else { break };
        (plan, regions) = (next, more);
    }
    let unstreamed = whole.arena_lower_bound_bytes;
    if plan.arena_bytes >= whole.arena_bytes {
        // Nothing gained in the end: every buffer whole.
        (plan, regions) = (whole, Vec::new());
    }
    plan.unstreamed_lower_bound_bytes = unstreamed;
    (plan, regions)
}

/// The plan with `regions` streamed: every buffer a region touches is live
/// through the whole region, and its rings take their slots only.
fn plan_regions(graph: &Graph, outputs_in_arena: bool, regions: &[Region]) -> Plan {
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
    // A region's nodes run interleaved, band by band: one step of the schedule.
    for region in regions {
        let (first, last) = (region.nodes.start, region.nodes.end - 1);
        for (a, b) in ranges.iter_mut().flatten() {
            if *a <= last && first <= *b {
                (*a, *b) = ((*a).min(first), (*b).max(last));
            }
        }
    }
    let ring = |id: NodeId| regions.iter().find_map(|r| r.rings.get(&id).copied());
    let mut in_place = in_place_inputs(graph, &ranges, &external);
    // In a region, a node runs band by band: storing in place of an input could
    // overwrite rows that an earlier node still reads in a later band. (Only
    // the region's nodes read its rings.)
    for (id, of) in in_place.iter_mut().enumerate() {
        if regions.iter().any(|r| r.nodes.contains(&id)) {
            *of = None;
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
                bytes: match ring(id) {
                    Some(slots) => stream::ring_bytes(graph, id, slots),
                    None => graph.buffer_bytes(id),
                }
                .next_multiple_of(ALIGN),
                ring_rows: ring(id),
                first,
                last,
                in_place_of: in_place[id.index()].map(|of| of.to_string()),
                owner: id,
            })
        })
        .collect();

    // Slots: a buffer stored in place of another joins that one's slot.
    let mut slot_of_node: Vec<Option<usize>> = vec![None; graph.nodes.len()];
    let mut slots: Vec<Slot> = Vec::new();
    for b in &buffers {
        let joined = in_place[b.owner.index()].and_then(|of| slot_of_node[of.index()]);
        let slot = match joined {
            Some(s) => {
                let slot = &mut slots[s];
                slot.last = slot.last.max(b.last);
                slot.bytes = slot.bytes.max(b.bytes);
                s
            }
            None => {
                slots.push(Slot { first: b.first, last: b.last, bytes: b.bytes, offset: 0 });
                slots.len() - 1
            }
        };
        slot_of_node[b.owner.index()] = Some(slot);
    }

    let mut order: Vec<usize> = (0..slots.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(slots[i].bytes), slots[i].first));
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_bytes = 0;
    for i in order {
        let b = &slots[i];
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .map(|&j| &slots[j])
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
        slots[i].offset = offset;
        arena_bytes = arena_bytes.max(offset + slots[i].bytes);
        placed.push(i);
    }
    for b in &mut buffers {
        b.offset = slots[slot_of_node[b.owner.index()].expect("every buffer has a slot")].offset;
    }

    let steps = graph.nodes.len();
    let live_bytes: Vec<usize> = (0..steps)
        .map(|s| slots.iter().filter(|b| b.first <= s && s <= b.last).map(|b| b.bytes).sum::<usize>())
        .collect();
    // The first step with the most bytes live.
    let (peak_step, arena_lower_bound_bytes) =
        live_bytes.iter().enumerate().fold((0, 0), |best, (s, &b)| if b > best.1 { (s, b) } else { best });
    let unshared_bytes = buffers.iter().map(|b| b.bytes).sum();
    Plan {
        arena_bytes,
        arena_lower_bound_bytes,
        unstreamed_lower_bound_bytes: arena_lower_bound_bytes,
        peak_step,
        unshared_bytes,
        buffers,
        regions: regions.iter().map(|r| r.nodes.clone()).collect(),
        live_bytes,
    }
}

/// One arena interval: a buffer, or a chain of buffers each stored in place
/// of the one before.
struct Slot {
    first: usize,
    last: usize,
    bytes: usize,
    offset: usize,
}

/// For each node, the input whose buffer it stores its result in (see the
/// module docs): the node's last kernel is elementwise, it owns a buffer, and
/// the input owns a buffer of the same shape that no later step reads.
fn in_place_inputs(graph: &Graph, ranges: &[Option<(usize, usize)>], external: &[NodeId]) -> Vec<Option<NodeId>> {
    graph
        .nodes
        .iter()
        .map(|(id, node)| {
            let elementwise_last = matches!(node.op, Op::GlobalContext(_) | Op::Add);
            // A convolution reads its addend only at the elements it writes.
            let onto_addend = matches!(node.op, Op::Conv2d(_)) && node.inputs.len() == 2;
            if !(elementwise_last || onto_addend) || graph.storage_owner(id) != id || external.contains(&id) {
                return None;
            }
            let candidates = if onto_addend { &node.inputs[1..] } else { &node.inputs[..] };
            candidates.iter().copied().find(|&input| {
                graph.storage_owner(input) == input
                    && !external.contains(&input)
                    && graph.nodes[input].shape == node.shape
                    && ranges[input.index()].is_some_and(|(_, last)| last == id.index())
            })
        })
        .collect()
}

/// Pairs of buffers that are live at the same step and overlap in the arena
/// (a correct plan has none). A buffer stored in place of another shares its
/// storage at the one step where the other is read for the last time.
pub fn conflicts(plan: &Plan) -> Vec<(String, String)> {
    let hand_over = |a: &Buffer, b: &Buffer| {
        b.in_place_of.as_deref() == Some(a.node.as_str()) && a.last == b.first && a.offset == b.offset
    };
    let mut out = Vec::new();
    for (i, a) in plan.buffers.iter().enumerate() {
        for b in &plan.buffers[i + 1..] {
            let in_time = a.first <= b.last && b.first <= a.last;
            let in_space = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
            if in_time && in_space && !hand_over(a, b) && !hand_over(b, a) {
                out.push((a.node.clone(), b.node.clone()));
            }
        }
    }
    out
}
