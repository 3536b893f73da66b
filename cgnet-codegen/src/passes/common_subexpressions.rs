//! A node that computes exactly what an earlier node computes (the same op,
//! parameters and inputs) is dropped and its readers read the earlier result.
//! In CGNet that is the second input injection: `sample2` pools the image
//! twice, and its first pool is `sample1`'s pool, the costliest pool of the
//! network (it reads the full-resolution image).

use crate::ir::{Graph, Node, Op, Placement};

/// A node as the lowering made it: no epilogue, tee or placement to compare.
fn plain(n: &Node) -> bool {
    n.epilogue.is_empty() && n.tees.is_empty() && n.placement == Placement::Own
}

pub fn run(graph: &mut Graph) -> usize {
    let mut rewrites = 0;
    let handles = graph.nodes.handles().collect::<Vec<_>>();
    for (i, &later) in handles.iter().enumerate() {
        let node = &graph.nodes[later];
        if matches!(node.op, Op::Input) || !plain(node) || graph.is_output(later) {
            continue;
        }
        let same = handles[..i].iter().copied().find(|&earlier| {
            let e = &graph.nodes[earlier];
            plain(e) && e.op == node.op && e.inputs == node.inputs && e.shape == node.shape
        });
        if let Some(earlier) = same {
            graph.replace_uses(later, earlier);
            rewrites += 1;
        }
    }
    rewrites
}
