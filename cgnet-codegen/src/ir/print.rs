//! The IR as text: one line per node, stable handle names.
//!
//! ```text
//! %3 = conv2d[k3 s2 d1 g1] %0 w=@0 -> 32x19x27  ; level1_0.conv
//! ```

use std::fmt::{self, Write};

use super::{EpilogueStep, Graph, Op, Placement};

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, node) in self.nodes.iter() {
            let mut line = format!("{id} = {}", node.op.mnemonic());
            match &node.op {
                Op::Conv2d(c) => {
                    write!(line, "[k{} s{} d{} g{}]", c.kernel, c.stride, c.dilation, c.groups)?;
                }
                Op::DepthwisePair { sur, .. } => write!(line, "[d1 d{}]", sur.dilation)?,
                _ => {}
            }
            for input in &node.inputs {
                write!(line, " {input}")?;
            }
            let params = node.op.params();
            if !params.is_empty() {
                let names: Vec<String> = params.iter().map(|p| p.to_string()).collect();
                write!(line, " ({})", names.join(", "))?;
            }
            write!(line, " -> {}", node.shape)?;
            if let Placement::Slice { owner, channel_offset } = node.placement {
                write!(line, " into {owner}[{channel_offset}..{}]", channel_offset + node.shape.c)?;
            }
            if !node.epilogue.is_empty() {
                write!(line, " then {}", epilogue_text(&node.epilogue))?;
            }
            for tee in &node.tees {
                let end = tee.channel_offset + node.shape.c;
                write!(line, " tee {}[{}..{end}]", tee.owner, tee.channel_offset)?;
                if !tee.epilogue.is_empty() {
                    write!(line, " after {}", epilogue_text(&tee.epilogue))?;
                }
            }
            writeln!(f, "{line}  ; {}", node.name)?;
        }
        for (kind, node) in &self.outputs {
            writeln!(f, "output {} = {node}", kind.name())?;
        }
        for (id, param) in self.params.iter() {
            writeln!(f, "{id} {:?} {}", param.shape, param.key)?;
        }
        Ok(())
    }
}

fn epilogue_text(steps: &[EpilogueStep]) -> String {
    let step = |s: &EpilogueStep| match s {
        EpilogueStep::Affine { scale, shift } => format!("affine({scale}, {shift})"),
        EpilogueStep::Prelu(p) => format!("prelu({p})"),
        EpilogueStep::Relu => "relu".to_string(),
    };
    steps.iter().map(step).collect::<Vec<_>>().join(", ")
}
