//! Pictures of a compiled model for people: the arena plan as SVG (buffers
//! as rectangles, schedule step across, arena offset down) and the fused
//! graph as Graphviz DOT. Both are deterministic text, so a committed picture
//! can be checked against what the tool writes.

use std::fmt::Write;

use crate::ir::{Graph, Placement};
use crate::plan::Plan;

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 640.0;
/// Room for the title and the axes' labels.
const LEFT: f64 = 70.0;
const TOP: f64 = 50.0;
const RIGHT: f64 = 20.0;
const BOTTOM: f64 = 50.0;

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Escapes text for a quoted DOT string.
fn dot_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A fill colour per buffer, from its name (FNV-1a), light enough for black text.
fn colour(name: &str) -> &'static str {
    const PASTELS: [&str; 12] = [
        "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#d9d9d9", "#bc80bd",
        "#ccebc5", "#ffed6f",
    ];
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    PASTELS[(hash % PASTELS.len() as u64) as usize]
}

fn megabytes(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The buffer plan as an SVG picture: one rectangle per buffer from the step
/// it is first written to the step it is last read, at its arena offset, with
/// the arena's size and the lower bound (the most bytes live at one step)
/// marked. Each rectangle's tooltip names the layer, its size and live range.
pub fn plan_svg(plan: &Plan, title: &str) -> String {
    let steps = plan.buffers.iter().map(|b| b.last + 1).max().unwrap_or(1) as f64;
    let top_bytes = plan.arena_bytes.max(plan.arena_lower_bound_bytes).max(1) as f64;
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |step: f64| LEFT + step / steps * plot_w;
    let y = |bytes: f64| TOP + bytes / top_bytes * plot_h;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="20" font-size="15">{}: {} buffers planned into {} of arena (lower bound {}; unshared, {})</text>"#,
        escape(title),
        plan.buffers.len(),
        megabytes(plan.arena_bytes),
        megabytes(plan.arena_lower_bound_bytes),
        megabytes(plan.unshared_bytes)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#f6f6f6" stroke="#999"/>"##
    );
    for b in &plan.buffers {
        // A buffer stored in place of another takes over its storage halfway
        // through the step that hands it over, so the two do not overlap.
        let taken_over = plan.buffers.iter().any(|o| o.in_place_of.as_deref() == Some(b.node.as_str()));
        let start = b.first as f64 + if b.in_place_of.is_some() { 0.5 } else { 0.0 };
        let end = (b.last + 1) as f64 - if taken_over { 0.5 } else { 0.0 };
        let (x0, x1) = (x(start), x(end));
        let (y0, y1) = (y(b.offset as f64), y((b.offset + b.bytes) as f64));
        let reuse = b.in_place_of.as_ref().map(|of| format!(", stored in place of {of}")).unwrap_or_default();
        let _ = writeln!(
            svg,
            r##"<rect x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{}" stroke="#333" stroke-width="0.5"><title>{} ({}): {} bytes at offset {}, live at steps {}..={}{reuse}</title></rect>"##,
            (x1 - x0).max(0.5),
            (y1 - y0).max(0.5),
            colour(&b.name),
            escape(&b.name),
            b.node,
            b.bytes,
            b.offset,
            b.first,
            b.last
        );
        // The layer's name where it fits (about 6 px per character, 11 px high), else its handle.
        let label = [b.name.as_str(), b.node.as_str()].into_iter().find(|l| x1 - x0 > 6.0 * l.len() as f64 + 4.0);
        if let Some(label) = label.filter(|_| y1 - y0 > 13.0) {
            let _ =
                writeln!(svg, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, x0 + 2.0, (y0 + y1) / 2.0 + 4.0, escape(label));
        }
    }
    // The lower bound's label on the left, the arena's on the right: they coincide when the plan is optimal.
    for (bytes, label, style, anchor, label_x) in [
        (
            plan.arena_lower_bound_bytes,
            format!("lower bound {}", megabytes(plan.arena_lower_bound_bytes)),
            "6,4",
            "start",
            LEFT + 4.0,
        ),
        (plan.arena_bytes, format!("arena {}", megabytes(plan.arena_bytes)), "none", "end", WIDTH - RIGHT - 4.0),
    ] {
        let line_y = y(bytes as f64);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{line_y:.1}" x2="{:.1}" y2="{line_y:.1}" stroke="#c00" stroke-width="1.5" stroke-dasharray="{style}"/>"##,
            WIDTH - RIGHT
        );
        let _ = writeln!(
            svg,
            r##"<text x="{label_x:.1}" y="{:.1}" fill="#c00" text-anchor="{anchor}">{label}</text>"##,
            line_y - 4.0
        );
    }
    // Axes: offsets every tenth of the arena, steps every tenth of the schedule.
    for i in 0..=10 {
        let bytes = top_bytes * f64::from(i) / 10.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.1}</text>"#,
            LEFT - 4.0,
            y(bytes) + 4.0,
            bytes / 1e6
        );
        let step = (steps * f64::from(i) / 10.0).round();
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{step}</text>"#,
            x(step),
            HEIGHT - BOTTOM + 15.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">schedule step (fused node)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">arena offset (MB)</text>"#,
        TOP + plot_h / 2.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// The graph in Graphviz DOT: a box per node (handle, op, output shape, the
/// authors' layer name, epilogues and in-place writes), an edge per input.
pub fn graph_dot(graph: &Graph, title: &str) -> String {
    let mut dot = String::new();
    let _ = writeln!(dot, "digraph \"{}\" {{", dot_escape(title));
    let _ = writeln!(dot, "  rankdir=TB;\n  node [shape=box, fontname=\"sans-serif\", fontsize=10];");
    for (id, node) in graph.nodes.iter() {
        let mut label = format!("{id} {}\\n{}\\n{}", node.op.mnemonic(), node.shape, dot_escape(&node.name));
        if !node.epilogue.is_empty() {
            let _ = write!(label, "\\n+ {} epilogue step(s)", node.epilogue.len());
        }
        if let Placement::Slice { owner, channel_offset } = node.placement {
            let _ = write!(label, "\\ninto {owner}[{channel_offset}..{}]", channel_offset + node.shape.c);
        }
        for tee in &node.tees {
            let _ = write!(label, "\\ntee {}[{}..]", tee.owner, tee.channel_offset);
        }
        let _ = writeln!(dot, "  n{} [label=\"{label}\"];", id.index());
        for input in &node.inputs {
            let _ = writeln!(dot, "  n{} -> n{};", input.index(), id.index());
        }
    }
    for (kind, node) in &graph.outputs {
        let _ = writeln!(dot, "  out_{0} [label=\"{0}\", shape=ellipse];", kind.name());
        let _ = writeln!(dot, "  n{} -> out_{};", node.index(), kind.name());
    }
    dot.push_str("}\n");
    dot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ModelSpec;

    fn fused(spec: &ModelSpec) -> Graph {
        let graph = crate::ir::lower(spec).compact();
        crate::passes::optimize(&graph, None).expect("the pipeline runs").0
    }

    #[test]
    fn the_plan_picture_has_every_buffer_and_both_bounds() {
        let graph = fused(&ModelSpec::cityscapes(64, 128));
        let plan = crate::plan::plan(&graph);
        let svg = plan_svg(&plan, "M3N21 <64x128>");
        assert_eq!(svg.matches("<rect x=").count(), plan.buffers.len() + 1, "a rectangle per buffer and the plot");
        assert_eq!(svg.matches("<title>").count(), plan.buffers.len());
        assert!(svg.contains("M3N21 &lt;64x128&gt;"));
        assert!(svg.contains(&format!("lower bound {}", megabytes(plan.arena_lower_bound_bytes))));
        assert!(svg.contains(&format!("arena {}", megabytes(plan.arena_bytes))));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
    }

    #[test]
    fn the_graph_picture_has_every_node_and_edge() {
        let graph = fused(&ModelSpec::cityscapes(64, 128));
        let dot = graph_dot(&graph, "m");
        let edges: usize = graph.nodes.iter().map(|(_, n)| n.inputs.len()).sum::<usize>() + graph.outputs.len();
        assert_eq!(dot.matches(" -> ").count(), edges);
        assert_eq!(dot.matches("[label=").count(), graph.nodes.len() + graph.outputs.len());
        assert!(dot.starts_with("digraph \"m\" {") && dot.ends_with("}\n"));
    }
}
