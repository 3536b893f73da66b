//! Loading the PyTorch golden cases.
//!
//! The project ships six cases in `tests/golden/` (five synthetic topologies and a
//! 96x128 crop of a CamVid frame through the authors' bundled weights), so every
//! golden test runs on a fresh clone. The full 360x480 CamVid case is an extra: it
//! runs when `../shared/golden` is beside the checkout and is skipped otherwise.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cgnet_codegen::{ir::Graph, lower, spec::read_spec_file, ModelSpec, Tensor};
use cgnet_runtime::{read_f32_tensor, Weights};

/// The bit patterns of some floats, to compare results bit for bit.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The cases shipped in `tests/golden/`: a missing file is a failure.
pub const CASES: [&str; 6] = [
    "cityscapes_m3n21_64x128",
    "tiny_m1n1_c4_37x53",
    "lrl_noinj_m2n3_c5_48x80",
    "relu_noglo_m3n4_c7_40x72",
    "nores_m2n2_c3_33x65",
    "camvid_official_crop_96x128",
];

/// Cases read from `../shared/golden` when it exists.
pub const EXTRA_CASES: [&str; 1] = ["camvid_official_360x480"];

/// The repository root: this package's folder, or (for the tests of
/// cgnet-codegen, which include this module) the folder above it.
fn root() -> &'static Path {
    let package = Path::new(env!("CARGO_MANIFEST_DIR"));
    match package.parent() {
        Some(parent) if !package.join("tests/golden").is_dir() => parent,
        _ => package,
    }
}

/// The project's own golden folder.
pub fn golden_dir() -> PathBuf {
    root().join("tests/golden")
}

/// `../shared/golden`, when it is beside the checkout.
pub fn shared_golden_dir() -> Option<PathBuf> {
    let dir = root().join("../shared/golden");
    dir.is_dir().then_some(dir)
}

/// The bundled cases plus the extras that are available; prints `SKIPPED` for the others.
/// With `CGNET_GOLDEN_CASES=extra` only the extras (which must then be there): how
/// `.ci/run` adds them after a run of everything without them.
pub fn all_cases() -> Vec<&'static str> {
    if std::env::var("CGNET_GOLDEN_CASES").is_ok_and(|v| v == "extra") {
        assert!(
            shared_golden_dir().is_some(),
            "CGNET_GOLDEN_CASES=extra but ../shared/golden is not beside the checkout"
        );
        return EXTRA_CASES.to_vec();
    }
    let mut cases = CASES.to_vec();
    match shared_golden_dir() {
        Some(_) => cases.extend(EXTRA_CASES),
        None => {
            for extra in EXTRA_CASES {
                eprintln!("SKIPPED golden case {extra}: ../shared/golden is not beside the checkout");
            }
        }
    }
    cases
}

/// The bundled authors' CamVid weights (also the crop case's weights).
pub fn camvid_weights() -> PathBuf {
    root().join("weights/cgnet_camvid.safetensors")
}

/// Where a case's spec, weights and tensors are.
pub struct CasePaths {
    pub spec: PathBuf,
    pub weights: PathBuf,
    pub io: PathBuf,
}

pub fn paths(name: &str) -> CasePaths {
    let dir = if EXTRA_CASES.contains(&name) {
        shared_golden_dir().unwrap_or_else(|| panic!("golden case {name} needs ../shared/golden"))
    } else {
        golden_dir()
    };
    let weights =
        if name.starts_with("camvid_official") { camvid_weights() } else { dir.join(format!("{name}.safetensors")) };
    CasePaths { spec: dir.join(format!("{name}.json")), weights, io: dir.join(format!("{name}.io.safetensors")) }
}

pub struct Golden {
    pub name: String,
    pub spec: ModelSpec,
    pub graph: Graph,
    pub input: Tensor,
    pub logits: Tensor,
    pub labels: Vec<i32>,
    /// Pixels where the reference's top two scores are within 1e-4 (labels may differ).
    pub ambiguous: Vec<bool>,
}

fn tensor(shape: &[usize], data: Vec<f32>) -> Tensor {
    assert_eq!(shape[0], 1);
    Tensor { c: shape[1], h: shape[2], w: shape[3], data }
}

pub fn load(name: &str) -> Golden {
    let paths = paths(name);
    let spec = read_spec_file(&paths.spec).unwrap();
    let mut graph = lower(&spec);
    let weights = Weights::load(&paths.weights, &graph.expected_weights()).unwrap();
    graph.bind(&weights);
    let io = paths.io;
    let (s, d) = read_f32_tensor(&io, "input").unwrap();
    let input = tensor(&s, d);
    let (s, d) = read_f32_tensor(&io, "logits").unwrap();
    let logits = tensor(&s, d);
    let (s, scores) = read_f32_tensor(&io, "scores").unwrap();
    let labels = read_i32(&io, "labels");
    let (c, pixels) = (s[1], s[2] * s[3]);
    let ambiguous = (0..pixels)
        .map(|p| {
            let mut col: Vec<f32> = (0..c).map(|k| scores[k * pixels + p]).collect();
            col.sort_by(|a, b| b.total_cmp(a));
            col.len() > 1 && col[0] - col[1] <= 1e-4
        })
        .collect();
    Golden { name: name.into(), spec, graph, input, logits, labels, ambiguous }
}

pub fn read_i32(path: &Path, name: &str) -> Vec<i32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor(name).unwrap();
    view.data().chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

impl Golden {
    /// Checks logits and labels against the reference with the tolerance of
    /// the project's golden data (`tests/golden/README.md`); returns the worst logit error relative to the bound.
    pub fn check(&self, logits: &Tensor, labels: &[i32], what: &str) -> f32 {
        assert_eq!(
            (logits.c, logits.h, logits.w),
            (self.logits.c, self.logits.h, self.logits.w),
            "{what}: logits shape"
        );
        let scale = self.logits.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let bound = 1e-4 * scale;
        let (worst_i, worst) = logits
            .data
            .iter()
            .zip(&self.logits.data)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold((0, 0.0f32), |best, (i, d)| if d > best.1 || d.is_nan() { (i, d) } else { best });
        assert!(
            worst <= bound,
            "{what} on {}: max |logits - reference| = {worst} at index {worst_i} > {bound}",
            self.name
        );
        assert_eq!(labels.len(), self.labels.len(), "{what}: labels length");
        let wrong: Vec<usize> =
            (0..labels.len()).filter(|&p| labels[p] != self.labels[p] && !self.ambiguous[p]).collect();
        assert!(
            wrong.is_empty(),
            "{what} on {}: {} labels differ, first at pixel {}",
            self.name,
            wrong.len(),
            wrong[0]
        );
        worst / bound
    }
}

pub fn labels_of(t: &Tensor) -> Vec<i32> {
    t.data.iter().map(|v| *v as i32).collect()
}

/// An 8-bit picture for the `*_rgb8` entry points, and the spec that
/// normalises it. For the CamVid cases, the golden's own image: their input is
/// the picture minus the CamVid mean that `models/camvid.cgnet` declares, so the
/// goldens hold for the picture too (`true`). For the synthetic cases (random
/// float inputs), a deterministic pseudo-random picture (`false`).
pub fn picture(golden: &Golden) -> (ModelSpec, Vec<u8>, bool) {
    let mut spec = golden.spec.clone();
    let (h, w) = (spec.height, spec.width);
    if !golden.name.starts_with("camvid") {
        let mut state = 0x2545_f491_u32;
        let pixels = (0..3 * h * w)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            })
            .collect();
        return (spec, pixels, false);
    }
    let camvid = cgnet_codegen::syntax::parse_file(&root().join("models/camvid.cgnet")).unwrap();
    spec.mean = camvid.spec.mean;
    let (mean, _) = spec.normalisation();
    let plane = h * w;
    let mut pixels = vec![0u8; 3 * plane];
    for (i, value) in golden.input.data.iter().enumerate() {
        let (c, p) = (i / plane, i % plane);
        let byte = value + mean[c];
        assert!(
            (byte - byte.round()).abs() < 1e-3 && (0.0..=255.0).contains(&byte),
            "{}: input {value} at {i} is not a byte minus the CamVid mean",
            golden.name
        );
        pixels[3 * p + c] = byte.round() as u8;
    }
    (spec, pixels, true)
}
