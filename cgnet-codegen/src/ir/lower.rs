//! ModelSpec -> unfused graph, following the authors' `Context_Guided_Network`
//! module by module, with their state-dict keys.

use super::verify::infer_shape;
use super::{Arena, Conv, Graph, Node, NodeId, Op, OutputKind, ParamId, ParamKind, Shape};
use crate::spec::{Activation, CgStage, ModelSpec, Residual};

/// BatchNorm epsilon in every layer of the authors' model.
pub const BN_EPS: f32 = 1e-3;

/// Builds the unfused graph of a validated spec, producing all three outputs.
pub fn lower(spec: &ModelSpec) -> Graph {
    let mut b = Builder {
        graph: Graph { nodes: Arena::default(), params: Arena::default(), input: NodeId::new(0), outputs: Vec::new() },
        activation: spec.activation,
    };
    let input = b.graph.nodes.push(Node::new(Op::Input, vec![], Shape::new(3, spec.height, spec.width), "input"));
    b.graph.input = input;
    let c1 = spec.stage1.channels;

    // Stage 1. The injection pools are scheduled right before their concat so
    // that they do not hold memory while the large stage-1 convs run.
    let mut x = b.conv_bn_act("level1_0", input, c1, 3, 2);
    for i in 1..spec.stage1.convs {
        x = b.conv_bn_act(&format!("level1_{i}"), x, c1, 3, 1);
    }
    let mut b1_parts = vec![x];
    if spec.input_injection {
        b1_parts.push(b.push(Op::AvgPool, vec![input], "sample1.pool.0"));
    }
    let b1 = b.concat_bn_act("b1", b1_parts);

    // Stage 2.
    let s2 = spec.stage2;
    let down2 = b.down_block("level2_0", b1, s2, spec);
    let mut out2 = down2;
    for i in 0..spec.stage2_blocks - 1 {
        out2 = b.cg_block(&format!("level2.{i}"), out2, s2, spec);
    }
    let mut parts = vec![out2, down2];
    if spec.input_injection {
        let half = b.push(Op::AvgPool, vec![input], "sample2.pool.0");
        parts.push(b.push(Op::AvgPool, vec![half], "sample2.pool.1"));
    }
    let cat2 = b.concat_bn_act("bn_prelu_2", parts);

    // Stage 3.
    let s3 = spec.stage3;
    let down3 = b.down_block("level3_0", cat2, s3, spec);
    let mut out3 = down3;
    for i in 0..spec.stage3_blocks - 1 {
        out3 = b.cg_block(&format!("level3.{i}"), out3, s3, spec);
    }
    let cat3 = b.concat_bn_act("bn_prelu_3", vec![down3, out3]);

    // Head.
    let logits = b.conv("classifier.0.conv", cat3, spec.classes, 1, 1, 1, 1);
    let scores = b.graph.nodes.push(Node::new(
        Op::Upsample,
        vec![logits],
        Shape::new(spec.classes, spec.height, spec.width),
        "upsample",
    ));
    let labels = b.push(Op::Argmax, vec![scores], "argmax");
    b.graph.outputs = vec![(OutputKind::Logits, logits), (OutputKind::Scores, scores), (OutputKind::Labels, labels)];
    b.graph
}

struct Builder {
    graph: Graph,
    activation: Activation,
}

impl Builder {
    /// Appends a node whose shape follows from its op and inputs.
    fn push(&mut self, op: Op, inputs: Vec<NodeId>, name: &str) -> NodeId {
        let mut node = Node::new(op, inputs, Shape::new(0, 0, 0), name);
        node.shape =
            infer_shape(&self.graph, &node).unwrap_or_else(|e| panic!("lowering built an ill-typed {name}: {e}"));
        self.graph.nodes.push(node)
    }

    fn param(&mut self, key: String, shape: Vec<usize>, kind: ParamKind) -> ParamId {
        self.graph.add_param(key, shape, kind, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        prefix: &str,
        x: NodeId,
        out: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        groups: usize,
    ) -> NodeId {
        let in_c = self.graph.nodes[x].shape.c;
        let weight =
            self.param(format!("{prefix}.weight"), vec![out, in_c / groups, kernel, kernel], ParamKind::Learnable);
        let conv = Conv { kernel, stride, dilation, groups, weight, bias: None };
        self.push(Op::Conv2d(conv), vec![x], prefix)
    }

    fn bn(&mut self, prefix: &str, x: NodeId) -> NodeId {
        let c = self.graph.nodes[x].shape.c;
        let mut p = |name: &str, kind| self.param(format!("{prefix}.{name}"), vec![c], kind);
        let gamma = p("weight", ParamKind::Learnable);
        let beta = p("bias", ParamKind::Learnable);
        let mean = p("running_mean", ParamKind::Statistic);
        let var = p("running_var", ParamKind::Statistic);
        self.push(Op::BatchNorm { gamma, beta, mean, var, eps: BN_EPS }, vec![x], prefix)
    }

    fn act(&mut self, prefix: &str, x: NodeId) -> NodeId {
        match self.activation {
            Activation::Prelu => {
                let c = self.graph.nodes[x].shape.c;
                let slope = self.param(format!("{prefix}.weight"), vec![c], ParamKind::Learnable);
                self.push(Op::Prelu { slope }, vec![x], prefix)
            }
            Activation::Relu => self.push(Op::Relu, vec![x], prefix),
        }
    }

    /// `BNPReLU`: `{prefix}.bn`, `{prefix}.act`.
    fn bn_act(&mut self, prefix: &str, x: NodeId) -> NodeId {
        let x = self.bn(&format!("{prefix}.bn"), x);
        self.act(&format!("{prefix}.act"), x)
    }

    /// `ConvBNPReLU`: a bias-free conv, padding `(k - 1) / 2`, then BN and activation.
    fn conv_bn_act(&mut self, prefix: &str, x: NodeId, out: usize, kernel: usize, stride: usize) -> NodeId {
        let x = self.conv(&format!("{prefix}.conv"), x, out, kernel, stride, 1, 1);
        self.bn_act(prefix, x)
    }

    fn concat_bn_act(&mut self, prefix: &str, parts: Vec<NodeId>) -> NodeId {
        let cat = self.push(Op::Concat, parts, &format!("{prefix}.cat"));
        self.bn_act(prefix, cat)
    }

    /// F_loc and F_sur of the output `x`, concatenated.
    fn joint_feature(&mut self, prefix: &str, x: NodeId, dilation: usize) -> NodeId {
        let c = self.graph.nodes[x].shape.c;
        let loc = self.conv(&format!("{prefix}.F_loc.conv"), x, c, 3, 1, 1, c);
        let sur = self.conv(&format!("{prefix}.F_sur.conv"), x, c, 3, 1, dilation, c);
        self.push(Op::Concat, vec![loc, sur], &format!("{prefix}.cat"))
    }

    /// `FGlo`: GAP -> FC -> ReLU -> FC -> sigmoid -> channel scale.
    fn f_glo(&mut self, prefix: &str, x: NodeId, reduction: usize) -> NodeId {
        let c = self.graph.nodes[x].shape.c;
        let hidden = c / reduction;
        let gap = self.push(Op::GlobalAvgPool, vec![x], &format!("{prefix}.avg_pool"));
        let fc = |b: &mut Self, i: usize, input: NodeId, out: usize, inp: usize| {
            let weight = b.param(format!("{prefix}.fc.{i}.weight"), vec![out, inp], ParamKind::Learnable);
            let bias = b.param(format!("{prefix}.fc.{i}.bias"), vec![out], ParamKind::Learnable);
            b.push(Op::Linear { weight, bias }, vec![input], &format!("{prefix}.fc.{i}"))
        };
        let h = fc(self, 0, gap, hidden, c);
        let h = self.push(Op::Relu, vec![h], &format!("{prefix}.fc.1"));
        let s = fc(self, 2, h, c, hidden);
        let s = self.push(Op::Sigmoid, vec![s], &format!("{prefix}.fc.3"));
        self.push(Op::ChannelScale, vec![x, s], prefix)
    }

    fn maybe_f_glo(&mut self, prefix: &str, x: NodeId, stage: CgStage, spec: &ModelSpec) -> NodeId {
        if spec.global_context {
            self.f_glo(&format!("{prefix}.F_glo"), x, stage.reduction)
        } else {
            x
        }
    }

    /// `ContextGuidedBlock_Down`: never has a residual.
    fn down_block(&mut self, prefix: &str, x: NodeId, stage: CgStage, spec: &ModelSpec) -> NodeId {
        let out = self.conv_bn_act(&format!("{prefix}.conv1x1"), x, stage.channels, 3, 2);
        let joint = self.joint_feature(prefix, out, stage.dilation);
        let joint = self.bn_act(prefix, joint);
        let reduced = self.conv(&format!("{prefix}.reduce.conv"), joint, stage.channels, 1, 1, 1, 1);
        self.maybe_f_glo(prefix, reduced, stage, spec)
    }

    /// `ContextGuidedBlock` with the spec's residual variant.
    fn cg_block(&mut self, prefix: &str, x: NodeId, stage: CgStage, spec: &ModelSpec) -> NodeId {
        let out = self.conv_bn_act(&format!("{prefix}.conv1x1"), x, stage.channels / 2, 1, 1);
        let joint = self.joint_feature(prefix, out, stage.dilation);
        let joint = self.bn_act(&format!("{prefix}.bn_prelu"), joint);
        match spec.residual {
            Residual::Global => {
                let refined = self.maybe_f_glo(prefix, joint, stage, spec);
                self.push(Op::Add, vec![x, refined], &format!("{prefix}.add"))
            }
            Residual::Local => {
                let sum = self.push(Op::Add, vec![x, joint], &format!("{prefix}.add"));
                self.maybe_f_glo(prefix, sum, stage, spec)
            }
            Residual::None => self.maybe_f_glo(prefix, joint, stage, spec),
        }
    }
}
