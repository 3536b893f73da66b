//! Streamed regions: a run of consecutive nodes computed band by band, so that
//! the tensors produced and consumed inside the run exist only as *rings* of
//! a few rows instead of whole.
//!
//! A region is a run of nodes whose outputs depend on a window of rows of
//! their inputs (convolutions, depthwise pairs, pools, adds, in-place concats;
//! not F_glo, whose squeeze needs its whole input). Its last node is cut into
//! [`BANDS`] bands of output rows; for each band, every node of the region
//! computes the rows that the region's later nodes need next (working back
//! from the band, each node's row window on its inputs), at least its share of
//! the band, in node order. A buffer that only nodes of the region write and
//! read (no reader outside it, not an output) then needs to hold only the rows
//! between the lowest one still to be read and the highest one written: a ring
//! of that many rows rounded up to a power of two (`View::row_mask`). The
//! planner keeps every buffer the region touches live through the whole
//! region, and gives a ring its slots only.
//!
//! Which runs are streamed ([`Streaming::Auto`], `plan::plan_streamed`): the
//! planner streams the stretch of the run holding the arena's peak step that
//! lowers the bytes live there most (and whose rings save at least
//! [`MIN_SAVING`] bytes), re-plans, and repeats while the peak lies in a run.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::ir::{Graph, NodeId, Op};

/// Bands a region's last node is cut into (fewer when it has fewer rows).
pub const BANDS: usize = 16;

/// Bytes a region's rings must save, against whole buffers, for
/// [`Streaming::Auto`] to stream it: below that the extra calls cost more
/// than the memory is worth.
pub const MIN_SAVING: usize = 1 << 20;

/// Whether the compiler streams regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streaming {
    /// Every buffer whole (the GPU target, whose dispatches run whole steps).
    Off,
    /// The runs that hold the arena's peak, while each saves [`MIN_SAVING`] (the CPU targets).
    Auto,
    /// As `Auto`, with no minimum saving: tests use it to stream small models.
    Always,
}

/// One streamed region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The region's nodes (schedule positions: node indices).
    pub nodes: Range<usize>,
    /// Per band, the nodes that compute rows in it, in order, with those rows.
    pub bands: Vec<Vec<(NodeId, Range<usize>)>>,
    /// The buffer owners kept as rings, with their slots (a power of two).
    pub rings: BTreeMap<NodeId, usize>,
}

impl Region {
    /// Bytes the rings save against whole buffers.
    pub fn saving(&self, graph: &Graph) -> usize {
        self.rings.iter().map(|(owner, slots)| graph.buffer_bytes(*owner) - ring_bytes(graph, *owner, *slots)).sum()
    }
}

/// Bytes of a ring of `slots` rows of `owner`'s buffer.
pub fn ring_bytes(graph: &Graph, owner: NodeId, slots: usize) -> usize {
    graph.buffer_bytes(owner) / graph.nodes[owner].shape.h.max(1) * slots
}

/// Whether a node may be part of a region: its output rows depend on a window
/// of rows of its inputs (or it has no kernel of its own: an in-place concat).
fn streamable(graph: &Graph, id: NodeId) -> bool {
    let node = &graph.nodes[id];
    match &node.op {
        // Not a part of a split convolution: its part would stay live through the region.
        Op::Conv2d(c) => c.groups == 1 && node.inputs.len() == 1,
        Op::DepthwisePair { .. } | Op::AvgPool | Op::Add => true,
        Op::Concat => (0..node.inputs.len()).all(|i| graph.concat_part_in_place(id, i)),
        _ => false,
    }
}

/// Whether a node runs a kernel of its own (an in-place concat does not).
fn computes(graph: &Graph, id: NodeId) -> bool {
    !matches!(graph.nodes[id].op, Op::Concat | Op::Input)
}

/// The maximal runs of consecutive streamable nodes with at least two kernels.
pub fn runs(graph: &Graph) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    let ids: Vec<NodeId> = graph.nodes.handles().collect();
    for (i, id) in ids.iter().enumerate() {
        match (streamable(graph, *id), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push(s..ids.len());
    }
    runs.retain(|r| r.clone().filter(|&i| computes(graph, ids[i])).count() >= 2);
    runs
}

/// Rows of an input that output rows `out` of node `reader` read (clipped to
/// the input's `src_h` rows).
pub fn source_rows(graph: &Graph, reader: NodeId, out: Range<usize>, src_h: usize) -> Range<usize> {
    if out.is_empty() {
        return 0..0;
    }
    let node = &graph.nodes[reader];
    let window = |a: usize, b: usize, k: usize, s: usize, d: usize| {
        let pad = d * (k - 1) / 2;
        let lo = (a * s).saturating_sub(pad);
        let hi = ((b - 1) * s + (k - 1) * d + 1).saturating_sub(pad).min(src_h);
        lo.min(hi)..hi
    };
    match &node.op {
        Op::Conv2d(c) => {
            // Whole tiles of rows, for Winograd.
            let t = granule(graph, reader);
            window(out.start / t * t, out.end.next_multiple_of(t).min(node.shape.h), c.kernel, c.stride, c.dilation)
        }
        Op::DepthwisePair { loc, sur } => window(out.start, out.end, 3, 1, loc.dilation.max(sur.dilation)),
        Op::AvgPool => window(out.start, out.end, 3, 2, 1),
        _ => out.start.min(src_h)..out.end.min(src_h),
    }
}

/// Rows a node's kernel computes together: a Winograd convolution's tiles.
fn granule(graph: &Graph, id: NodeId) -> usize {
    let node = &graph.nodes[id];
    match &node.op {
        Op::Conv2d(c) if crate::back::program::uses_winograd(c, graph.nodes[node.inputs[0]].shape.c, node.shape.c) => {
            cgnet_runtime::program::WINOGRAD_TILE
        }
        _ => 1,
    }
}

/// The buffers a node writes: its storage owner and its tees' owners.
fn writes(graph: &Graph, id: NodeId) -> Vec<NodeId> {
    let mut owners = vec![graph.storage_owner(id)];
    owners.extend(graph.nodes[id].tees.iter().map(|t| t.owner));
    owners
}

/// Schedules run `nodes` band by band: the bands and the rings. `None` when
/// no buffer of the run can be a ring.
pub fn schedule(graph: &Graph, nodes: Range<usize>) -> Option<Region> {
    let ids: Vec<NodeId> = graph.nodes.handles().collect();
    let inside = |id: NodeId| nodes.contains(&id.index());
    let kernels: Vec<NodeId> = ids[nodes.clone()].iter().copied().filter(|id| computes(graph, *id)).collect();
    let last = *kernels.last()?;
    // Readers of each buffer owner, inside the region and out.
    let mut readers: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    let mut escapes: Vec<NodeId> = graph.outputs.iter().map(|(_, n)| graph.storage_owner(*n)).collect();
    escapes.push(graph.input);
    for (id, node) in graph.nodes.iter() {
        for (index, input) in node.inputs.iter().enumerate() {
            if matches!(node.op, Op::Concat) && graph.concat_part_in_place(id, index) {
                continue;
            }
            let owner = graph.storage_owner(*input);
            if inside(id) {
                readers.entry(owner).or_default().push(id);
            } else {
                escapes.push(owner);
            }
        }
    }
    // Ring candidates: written only by the region's kernels, read only inside it.
    let mut writers: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    for id in graph.nodes.handles().filter(|id| computes(graph, *id)) {
        for owner in writes(graph, id) {
            writers.entry(owner).or_default().push(id);
        }
    }
    let candidates: Vec<NodeId> = writers
        .iter()
        .filter(|(owner, ws)| ws.iter().all(|w| inside(*w)) && !escapes.contains(owner) && readers.contains_key(owner))
        .map(|(owner, _)| *owner)
        .collect();
    if candidates.is_empty() {
        return None;
    }

    let bands = BANDS.min(graph.nodes[last].shape.h).max(1);
    let mut done: BTreeMap<NodeId, usize> = kernels.iter().map(|k| (*k, 0)).collect();
    // Per ring candidate: the most rows it must hold at once.
    let mut span: BTreeMap<NodeId, usize> = candidates.iter().map(|c| (*c, 1)).collect();
    let mut schedule = Vec::with_capacity(bands);
    for band in 0..bands {
        // Work back from the band: each node computes what later nodes read next.
        let mut target: BTreeMap<NodeId, usize> = BTreeMap::new();
        for &k in kernels.iter().rev() {
            let h = graph.nodes[k].shape.h;
            let mut want = (h * (band + 1)).div_ceil(bands);
            for owner in writes(graph, k) {
                for r in readers.get(&owner).into_iter().flatten() {
                    if let Some(&t) = target.get(r) {
                        let src_h = graph.nodes[owner].shape.h;
                        want = want.max(source_rows(graph, *r, done[r]..t, src_h).end);
                    }
                }
            }
            let g = granule(graph, k);
            target.insert(k, want.next_multiple_of(g).min(h).max(done[&k]));
        }
        let mut calls = Vec::new();
        for &k in &kernels {
            let rows = done[&k]..target[&k];
            if rows.is_empty() {
                continue;
            }
            // What this call reads of each ring, against the rows written so far.
            for input in &graph.nodes[k].inputs {
                let owner = graph.storage_owner(*input);
                if let Some(s) = span.get_mut(&owner) {
                    let src_h = graph.nodes[owner].shape.h;
                    let read = source_rows(graph, k, rows.clone(), src_h);
                    let written = writers[&owner].iter().map(|w| done[w]).max().unwrap_or(0);
                    *s = (*s).max(written.saturating_sub(read.start)).max(read.len());
                }
            }
            done.insert(k, rows.end);
            for owner in writes(graph, k) {
                if let Some(s) = span.get_mut(&owner) {
                    *s = (*s).max(rows.len());
                }
            }
            calls.push((k, rows));
        }
        schedule.push(calls);
    }
    let rings: BTreeMap<NodeId, usize> = span
        .into_iter()
        .map(|(owner, rows)| (owner, rows.next_power_of_two()))
        .filter(|(owner, slots)| *slots < graph.nodes[*owner].shape.h)
        .collect();
    if rings.is_empty() {
        return None;
    }
    let region = Region { nodes, bands: schedule, rings };
    check(graph, &region).ok()?;
    Some(region)
}

/// Replays a region's calls against its rings: every row a call reads of a
/// ring is still in its slot (written by each of the ring's writers whose
/// channels it reads, and not yet overwritten), every row of every node is
/// computed once, and a call writes at most a ring's slots.
pub fn check(graph: &Graph, region: &Region) -> Result<(), String> {
    // Per ring and writer, the row each slot holds.
    let mut slots: BTreeMap<(NodeId, NodeId), Vec<Option<usize>>> = BTreeMap::new();
    let mut computed: BTreeMap<NodeId, usize> = BTreeMap::new();
    for calls in &region.bands {
        for (k, rows) in calls {
            let done = computed.entry(*k).or_insert(0);
            if rows.start != *done {
                return Err(format!("{k} computes rows {rows:?} after {done}"));
            }
            *done = rows.end;
            for input in &graph.nodes[*k].inputs {
                let owner = graph.storage_owner(*input);
                let Some(&n) = region.rings.get(&owner) else { continue };
                let read = source_rows(graph, *k, rows.clone(), graph.nodes[owner].shape.h);
                // Reading the owner reads every writer's channels; a slice, its producer's.
                let held = slots.iter().filter(|((o, w), _)| *o == owner && (*input == owner || w == input));
                let held: Vec<&Vec<Option<usize>>> = held.map(|(_, h)| h).collect();
                if held.is_empty() && !read.is_empty() {
                    return Err(format!("{k} reads ring {owner} before anything is written to it"));
                }
                for y in read {
                    if let Some(h) = held.iter().find(|h| h[y % n] != Some(y)) {
                        return Err(format!("{k} reads row {y} of ring {owner}, whose slot holds {:?}", h[y % n]));
                    }
                }
            }
            for owner in writes(graph, *k) {
                if let Some(&n) = region.rings.get(&owner) {
                    if rows.len() > n {
                        return Err(format!("{k} writes {} rows of a {n}-row ring", rows.len()));
                    }
                    let held = slots.entry((owner, *k)).or_insert_with(|| vec![None; n]);
                    for y in rows.clone() {
                        held[y % n] = Some(y);
                    }
                }
            }
        }
    }
    for (k, done) in computed {
        if done != graph.nodes[k].shape.h {
            return Err(format!("{k} computes {done} of {} rows", graph.nodes[k].shape.h));
        }
    }
    Ok(())
}
