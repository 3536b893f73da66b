//! `ModelSpec`: the topology of one CGNet variant, as read from JSON (the
//! field names of the golden cases, `tests/golden/*.json`, are the contract) or from the
//! `cgnet!` grammar, and validated once.

use serde::{Deserialize, Serialize};

/// How a Context Guided block combines its input with its joint feature
/// (the paper's ablation: GRL, LRL, none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Residual {
    /// `out = x + F_glo(joint)` (the authors' code).
    Global,
    /// `out = F_glo(x + joint)`.
    Local,
    /// `out = F_glo(joint)`.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Prelu,
    Relu,
}

/// Stage 1: a stride-2 3x3 conv followed by `convs - 1` stride-1 3x3 convs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Stage1 {
    pub channels: usize,
    pub convs: usize,
}

impl Default for Stage1 {
    fn default() -> Self {
        Self { channels: 32, convs: 3 }
    }
}

/// Stages 2 and 3: Context Guided blocks at one resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgStage {
    pub channels: usize,
    /// Dilation of F_sur, the surrounding-context depthwise conv.
    pub dilation: usize,
    /// F_glo's bottleneck: its hidden layer has `channels / reduction` units.
    pub reduction: usize,
}

fn default_stage2() -> CgStage {
    CgStage { channels: 64, dilation: 2, reduction: 8 }
}

fn default_stage3() -> CgStage {
    CgStage { channels: 128, dilation: 4, reduction: 16 }
}

fn default_true() -> bool {
    true
}

/// One CGNet variant. Block counts include the stage's down-sampling block,
/// as in the authors' code (`M = 3` is `level2_0`, `level2.0`, `level2.1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Name used for emitted code (C symbols, Rust types); defaults to `cgnet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub classes: usize,
    /// M: blocks in stage 2, the down-sampling block included.
    pub stage2_blocks: usize,
    /// N: blocks in stage 3, the down-sampling block included.
    pub stage3_blocks: usize,
    pub residual: Residual,
    #[serde(default = "default_true")]
    pub input_injection: bool,
    pub activation: Activation,
    #[serde(default = "default_true")]
    pub global_context: bool,
    pub height: usize,
    pub width: usize,
    #[serde(default)]
    pub stage1: Stage1,
    #[serde(default = "default_stage2")]
    pub stage2: CgStage,
    #[serde(default = "default_stage3")]
    pub stage3: CgStage,
    /// The learnable-parameter count the author of the spec expects; checked
    /// against the topology when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<usize>,
    /// What is subtracted from 0..255 pixel values, per channel in RGB order
    /// ([`CITYSCAPES_MEAN`] when absent, as the authors' Cityscapes code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<[f32; 3]>,
    /// What the difference is then divided by, per channel (1 when absent: the
    /// authors' code does not divide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<[f32; 3]>,
    /// Class names and display colours, in class order (one per class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Label>>,
}

/// One class: its name and the colour label pictures draw it in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    pub name: String,
    pub colour: [u8; 3],
}

/// The authors' Cityscapes mean (RGB), the preprocessing of a spec without `mean`.
pub const CITYSCAPES_MEAN: [f32; 3] = [72.392_4, 82.908_92, 73.158_36];

/// The colours of classes a spec does not name (the Cityscapes palette, cycled).
const DEFAULT_PALETTE: [[u8; 3]; 19] = [
    [128, 64, 128],
    [244, 35, 232],
    [70, 70, 70],
    [102, 102, 156],
    [190, 153, 153],
    [153, 153, 153],
    [250, 170, 30],
    [220, 220, 0],
    [107, 142, 35],
    [152, 251, 152],
    [70, 130, 180],
    [220, 20, 60],
    [255, 0, 0],
    [0, 0, 142],
    [0, 0, 70],
    [0, 60, 100],
    [0, 80, 100],
    [0, 0, 230],
    [119, 11, 32],
];

/// Why a spec cannot describe a network.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read model spec {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid model spec: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Smallest input side: three stride-2 stages must leave at least one pixel
/// of real context for F_sur.
pub const MIN_SIDE: usize = 8;
/// 4K frames and below: the arena grows with the pixel count (about 1.4 GB at
/// 4096 x 4096 for the default model) and the reference interpreter keeps every
/// tensor (about nine times that), so larger inputs should be tiled by the caller.
pub const MAX_SIDE: usize = 4096;
/// Widest stage. The paper's widest is 128; a cap keeps every parameter count,
/// weight size and arena offset far from overflow, whatever a description says.
pub const MAX_CHANNELS: usize = 4096;
/// Most blocks in a stage (the paper's deepest stage 3 has 21), and most convs in stage 1.
pub const MAX_BLOCKS: usize = 256;

impl ModelSpec {
    /// The paper's default model: 19 Cityscapes classes, M = 3, N = 21.
    pub fn cityscapes(height: usize, width: usize) -> Self {
        Self {
            name: None,
            classes: 19,
            stage2_blocks: 3,
            stage3_blocks: 21,
            residual: Residual::Global,
            input_injection: true,
            activation: Activation::Prelu,
            global_context: true,
            height,
            width,
            stage1: Stage1::default(),
            stage2: default_stage2(),
            stage3: default_stage3(),
            parameters: None,
            mean: None,
            std: None,
            labels: None,
        }
    }

    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let spec: Self =
            serde_json::from_str(text).map_err(|e| SpecError::Read { path: "<json>".into(), reason: e.to_string() })?;
        spec.validate()?;
        Ok(spec)
    }

    /// The per-channel `(mean, std)` an RGB pixel is normalised with.
    pub fn normalisation(&self) -> ([f32; 3], [f32; 3]) {
        (self.mean.unwrap_or(CITYSCAPES_MEAN), self.std.unwrap_or([1.0; 3]))
    }

    /// The model's input from interleaved 8-bit RGB of the model's size:
    /// planar `[3, H, W]`, `(pixel - mean) * (1 / std)` per channel, as the
    /// `*_rgb8` entry points compute it (`cgnet_runtime::program::Normalisation`).
    ///
    /// # Panics
    /// When `rgb` is not `3 * height * width` bytes.
    pub fn normalise_rgb8(&self, rgb: &[u8]) -> Vec<f32> {
        let pixels = self.height * self.width;
        assert_eq!(rgb.len(), 3 * pixels, "interleaved RGB of the model's size");
        let (mean, std) = self.normalisation();
        let normalisation = cgnet_runtime::program::Normalisation::new(mean, std);
        let mut planar = vec![0.0; 3 * pixels];
        for (c, plane) in planar.chunks_exact_mut(pixels).enumerate() {
            for (out, pixel) in plane.iter_mut().zip(rgb.chunks_exact(3)) {
                *out = normalisation.apply(c, pixel[c]);
            }
        }
        planar
    }

    /// Every class's label: the spec's, else `class N` in the Cityscapes palette's colours.
    pub fn class_labels(&self) -> Vec<Label> {
        match &self.labels {
            Some(labels) => labels.clone(),
            None => (0..self.classes)
                .map(|c| Label { name: format!("class {c}"), colour: DEFAULT_PALETTE[c % DEFAULT_PALETTE.len()] })
                .collect(),
        }
    }

    /// The name for emitted code: the given name or `cgnet`.
    pub fn model_name(&self) -> &str {
        self.name.as_deref().unwrap_or("cgnet")
    }

    /// Checks every constraint and reports all violations at once.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, message: String| {
            if !ok {
                errors.push(message);
            }
        };
        check(self.classes > 0, "`classes` must be at least 1".into());
        check(self.classes <= 256, format!("`classes` is {}; labels are bytes, so at most 256", self.classes));
        check(self.stage1.convs > 0, "`stage1.convs` must be at least 1 (the stride-2 conv)".into());
        check(self.stage1.channels > 0, "`stage1.channels` must be at least 1".into());
        check(self.stage2_blocks > 0, "`stage2_blocks` must be at least 1 (the down-sampling block)".into());
        check(self.stage3_blocks > 0, "`stage3_blocks` must be at least 1 (the down-sampling block)".into());
        for (field, value) in [
            ("stage1.convs", self.stage1.convs),
            ("stage2_blocks", self.stage2_blocks),
            ("stage3_blocks", self.stage3_blocks),
        ] {
            check(value <= MAX_BLOCKS, format!("`{field}` is {value}; at most {MAX_BLOCKS}"));
        }
        for (field, value) in [
            ("stage1.channels", self.stage1.channels),
            ("stage2.channels", self.stage2.channels),
            ("stage3.channels", self.stage3.channels),
        ] {
            check(value <= MAX_CHANNELS, format!("`{field}` is {value}; at most {MAX_CHANNELS}"));
        }
        for (side, value) in [("height", self.height), ("width", self.width)] {
            check(
                (MIN_SIDE..=MAX_SIDE).contains(&value),
                format!("`{side}` is {value}; it must be between {MIN_SIDE} and {MAX_SIDE}"),
            );
        }
        for (stage, cfg) in [("stage2", self.stage2), ("stage3", self.stage3)] {
            let c = cfg.channels;
            check(c >= 2, format!("`{stage}.channels` must be at least 2"));
            check(
                c % 2 == 0,
                format!("`{stage}.channels` is {c}; it must be even (a CG block halves it for F_loc and F_sur)"),
            );
            check(
                (1..=MAX_SIDE).contains(&cfg.dilation),
                format!("`{stage}.dilation` is {}; it must be between 1 and {MAX_SIDE}", cfg.dilation),
            );
            if self.global_context {
                check(cfg.reduction > 0, format!("`{stage}.reduction` must be at least 1"));
                check(
                    cfg.reduction == 0 || (c % cfg.reduction == 0 && cfg.reduction <= c),
                    format!("`{stage}.reduction` ({}) must divide `{stage}.channels` ({c})", cfg.reduction),
                );
            }
        }
        for (field, values) in [("mean", self.mean), ("std", self.std)] {
            if let Some(values) = values {
                check(values.iter().all(|v| v.is_finite()), format!("`{field}` {values:?} must be finite"));
            }
        }
        if let Some(std) = self.std {
            check(std.iter().all(|v| *v > 0.0), format!("`std` {std:?} must be positive"));
        }
        if let Some(labels) = &self.labels {
            check(
                labels.len() == self.classes,
                format!("`labels` names {} classes; the model has {}", labels.len(), self.classes),
            );
            for (i, label) in labels.iter().enumerate() {
                check(!label.name.trim().is_empty(), format!("`labels` entry {i} has an empty name"));
                if labels[..i].iter().any(|l| l.name == label.name) {
                    check(false, format!("`labels` names `{}` twice", label.name));
                }
            }
        }
        if let Some(name) = &self.name {
            check(
                is_identifier(name),
                format!(
                    "`name` is {name:?}; it must be an identifier (letters, digits, `_`, not starting with a digit)"
                ),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SpecError::Invalid(errors))
        }
    }

    /// Spatial size after `n` stride-2 steps (conv 3x3 pad 1 and pool 3 pad 1 agree).
    pub fn downsampled(&self, n: u32) -> (usize, usize) {
        let mut hw = (self.height, self.width);
        for _ in 0..n {
            hw = (hw.0.div_ceil(2), hw.1.div_ceil(2));
        }
        hw
    }
}

pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads and validates a JSON spec file.
pub fn read_spec_file(path: &std::path::Path) -> Result<ModelSpec, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SpecError::Read { path: path.display().to_string(), reason: e.to_string() })?;
    let spec: ModelSpec = serde_json::from_str(&text)
        .map_err(|e| SpecError::Read { path: path.display().to_string(), reason: e.to_string() })?;
    spec.validate()?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(spec: &ModelSpec) -> Vec<String> {
        match spec.validate() {
            Err(SpecError::Invalid(m)) => m,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn preprocessing_and_labels_from_json() {
        let base = r#""classes": 2, "stage2_blocks": 1, "stage3_blocks": 1, "residual": "global", "activation": "prelu", "height": 16, "width": 16"#;
        let spec = ModelSpec::from_json(&format!(
            r#"{{{base}, "mean": [1, 2, 3], "std": [2, 2, 2], "labels": [{{"name": "road", "colour": [1, 2, 3]}}, {{"name": "sky", "colour": [4, 5, 6]}}]}}"#
        ))
        .unwrap();
        assert_eq!(spec.normalisation(), ([1.0, 2.0, 3.0], [2.0; 3]));
        assert_eq!(spec.class_labels()[1], Label { name: "sky".into(), colour: [4, 5, 6] });
        let plain = ModelSpec::from_json(&format!("{{{base}}}")).unwrap();
        assert_eq!(plain.normalisation(), (CITYSCAPES_MEAN, [1.0; 3]));
        assert_eq!(plain.class_labels()[0].name, "class 0");
        let bad =
            ModelSpec::from_json(&format!(r#"{{{base}, "labels": [{{"name": "road", "colour": [1, 2, 300]}}]}}"#));
        assert!(bad.unwrap_err().to_string().contains("300"));
        let err = ModelSpec::from_json(&format!(
            r#"{{{base}, "std": [1, -1, 1], "labels": [{{"name": " ", "colour": [1, 2, 3]}}]}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("must be positive") && err.contains("names 1 classes") && err.contains("empty name"),
            "{err}"
        );
    }

    #[test]
    fn default_model_is_valid() {
        ModelSpec::cityscapes(512, 1024).validate().unwrap();
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let mut spec = ModelSpec::cityscapes(4, 1024);
        spec.classes = 0;
        spec.stage2_blocks = 0;
        spec.stage3.reduction = 3;
        spec.stage2.channels = 63;
        let m = messages(&spec);
        assert!(m.iter().any(|m| m.contains("`classes` must be at least 1")), "{m:?}");
        assert!(m.iter().any(|m| m.contains("`stage2_blocks`")), "{m:?}");
        assert!(m.iter().any(|m| m.contains("`stage3.reduction` (3) must divide")), "{m:?}");
        assert!(m.iter().any(|m| m.contains("`stage2.channels` is 63; it must be even")), "{m:?}");
        assert!(m.iter().any(|m| m.contains("`height` is 4")), "{m:?}");
    }

    #[test]
    fn reduction_is_free_without_global_context() {
        let mut spec = ModelSpec::cityscapes(64, 64);
        spec.global_context = false;
        spec.stage3.reduction = 0;
        spec.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected() {
        let err = ModelSpec::from_json(r#"{"classes": 3, "stage2_blocks": 1, "stage3_blocks": 1, "residual": "global", "activation": "prelu", "height": 32, "width": 32, "colour": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
        let err = ModelSpec::from_json(r#"{"classes": 3, "stage2_blocks": 1, "stage3_blocks": 1, "residual": "sideways", "activation": "prelu", "height": 32, "width": 32}"#).unwrap_err();
        assert!(err.to_string().contains("sideways"), "{err}");
    }

    #[test]
    fn sizes_round_up_like_pytorch() {
        let spec = ModelSpec::cityscapes(37, 53);
        assert_eq!(spec.downsampled(1), (19, 27));
        assert_eq!(spec.downsampled(3), (5, 7));
    }

    #[test]
    fn bad_names_are_rejected() {
        let mut spec = ModelSpec::cityscapes(64, 64);
        spec.name = Some("9lives".into());
        assert!(messages(&spec)[0].contains("identifier"));
    }
}
