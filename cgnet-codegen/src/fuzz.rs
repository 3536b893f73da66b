//! The bodies of the fuzz targets: one function per kind of untrusted input,
//! each taking arbitrary bytes. `fuzz/` (cargo-fuzz, nightly) drives them with
//! libFuzzer; `tests/fuzz_replay.rs` replays the committed corpus through the
//! same functions on the stable toolchain, so a regression fails `cargo test`.
//!
//! The invariant: every input gives `Ok` or a typed error. A panic (including
//! an `expect` below, which states what the front ends promise), an abort, a
//! hang or an allocation above [`ALLOCATION_CAP_BYTES`] is a bug.

use std::path::Path;
use std::sync::OnceLock;

use cgnet_runtime::{safetensors_file, ExpectedParam, Weights};

use crate::interp::{self, kernels::Tensor};
use crate::ir::{lower, verify, Graph};
use crate::spec::{Activation, CgStage, ModelSpec, Residual, Stage1};

/// The largest single allocation any target may make for any input (the
/// fuzzers run with `-malloc_limit_mb` set to this; the replay test checks it
/// too). Inputs are at most a few megabytes, so only a size read from the input
/// and trusted could come near it.
pub const ALLOCATION_CAP_BYTES: usize = 256 << 20;

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the `fuzz/fuzz_targets/NAME.rs` file and the
/// `fuzz/corpus/NAME/` folder) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("grammar", grammar),
    ("spec_json", spec_json),
    ("weights", weights),
    ("weights_structured", weights_structured),
    ("input_tensor", input_tensor),
    #[cfg(feature = "pictures")]
    ("picture", picture),
    #[cfg(feature = "pictures")]
    ("label_image", label_image),
];

/// `.cgnet` text (the `cgnet!` grammar): parsed, validated, and on success
/// compiled as far as the arena plan.
pub fn grammar(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(decl) = crate::syntax::parse_text(text, "fuzz.cgnet") {
        compile(&decl.spec);
    }
}

/// A JSON model spec: parsed, validated, and on success compiled as far as
/// the arena plan.
pub fn spec_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = ModelSpec::from_json(text) {
        compile(&spec);
    }
}

/// What `cgnetc` does with a description before it reads weights: a
/// validated spec must lower, verify, optimise and plan without error.
fn compile(spec: &ModelSpec) {
    let graph = lower(spec);
    verify(&graph).expect("a validated spec lowers to a well-formed graph");
    let _ = graph.learnable_parameters();
    let (fused, _) = crate::passes::optimize(&graph.compact(), None).expect("every pass keeps the graph well-formed");
    let plan = crate::plan::plan(&fused);
    assert!(plan.arena_bytes >= plan.arena_lower_bound_bytes, "no plan beats the lower bound");
}

/// A `.safetensors` weight file checked against [`fuzz_model`]'s parameters.
pub fn weights(data: &[u8]) {
    static EXPECTED: OnceLock<Vec<ExpectedParam>> = OnceLock::new();
    let expected = EXPECTED.get_or_init(|| fuzz_model().expected_weights());
    if let Ok(loaded) = Weights::from_bytes(data, "fuzz.safetensors", expected) {
        for param in expected {
            let values = loaded.get(&param.key).expect("accepted weights hold every expected key");
            assert_eq!(values.len(), param.shape.iter().product::<usize>(), "`{}`", param.key);
            assert!(values.iter().all(|v| v.is_finite()), "accepted weights are finite");
        }
    }
}

/// Structure-aware mutations of a real weight file: the input is read as a
/// list of edits (offsets, dtypes, shapes, duplicate, missing and renamed
/// keys, non-finite values, a lying header length, truncation) applied to
/// [`fuzz_weights_file`] before it is loaded as in [`weights`].
pub fn weights_structured(data: &[u8]) {
    weights(&EditedFile::from_edits(data).bytes());
}

/// An input tensor file as `cgnetc run` reads it (tensor `input`, F32, F16 or
/// BF16); an input of the model's shape is then run through the reference
/// interpreter.
pub fn input_tensor(data: &[u8]) {
    let Ok((shape, values)) = cgnet_runtime::f32_tensor_from_bytes(data, Path::new("fuzz.safetensors"), "input") else {
        return;
    };
    assert_eq!(shape.iter().product::<usize>(), values.len(), "a tensor's shape covers its values");
    let model = fuzz_model();
    let input = model.nodes[model.input].shape;
    if shape != [1, input.c, input.h, input.w] {
        return;
    }
    let tensor = Tensor { c: input.c, h: input.h, w: input.w, data: values };
    let outputs = interp::run(model, &tensor).expect("a bound model runs on an input of its shape");
    let labels = &outputs[&crate::OutputKind::Labels];
    assert!(labels.data.iter().all(|&l| (l as usize) < fuzz_spec().classes), "labels name classes");
}

/// A picture file as `cgnetc segment` reads it (8-bit RGB PNG or JPEG), up
/// to 1 Mpx (decoding time grows with the pixels a header claims: the cap
/// keeps a 1 s timeout meaningful); one that decodes is resized to
/// [`fuzz_spec`]'s input, normalised and run.
#[cfg(feature = "pictures")]
pub fn picture(data: &[u8]) {
    let Ok(picture) = crate::pictures::decode_rgb_within(data, Path::new("fuzz.png"), 1 << 20) else { return };
    assert_eq!(picture.rgb.len(), 3 * picture.width * picture.height, "RGB bytes fit the size");
    let spec = fuzz_spec();
    let input = spec.normalise_rgb8(&picture.resized(spec.width, spec.height));
    let tensor = Tensor { c: 3, h: spec.height, w: spec.width, data: input };
    interp::run(fuzz_model(), &tensor).expect("a bound model runs on a decoded picture");
}

/// A label image as `cgnetc eval` reads it, expected at 16 x 16.
#[cfg(feature = "pictures")]
pub fn label_image(data: &[u8]) {
    if let Ok(labels) = crate::pictures::decode_labels(data, Path::new("fuzz.png"), 16, 16) {
        assert_eq!(labels.len(), 16 * 16, "one label per pixel");
    }
}

/// The model the weight and input targets read for: the smallest valid
/// CGNet (8x8 input, 4 channels per stage), so one run takes microseconds.
pub fn fuzz_spec() -> ModelSpec {
    ModelSpec {
        name: Some("fuzz".into()),
        classes: 3,
        stage2_blocks: 2,
        stage3_blocks: 2,
        residual: Residual::Global,
        input_injection: true,
        activation: Activation::Prelu,
        global_context: true,
        height: 8,
        width: 8,
        stage1: Stage1 { channels: 4, convs: 2 },
        stage2: CgStage { channels: 4, dilation: 2, reduction: 2 },
        stage3: CgStage { channels: 4, dilation: 4, reduction: 2 },
        parameters: None,
        mean: None,
        std: None,
        labels: None,
    }
}

/// [`fuzz_spec`]'s graph with the weights of [`fuzz_weights_file`] bound.
pub fn fuzz_model() -> &'static Graph {
    static MODEL: OnceLock<Graph> = OnceLock::new();
    MODEL.get_or_init(|| {
        let mut graph = lower(&fuzz_spec());
        let weights = Weights::from_bytes(&fuzz_weights_file(), "fuzz", &graph.expected_weights())
            .expect("the generated weights fit their model");
        graph.bind(&weights);
        graph
    })
}

/// A valid weight file for [`fuzz_spec`] (F32, deterministic values; variances positive).
pub fn fuzz_weights_file() -> Vec<u8> {
    let expected = lower(&fuzz_spec()).expected_weights();
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = expected
        .iter()
        .enumerate()
        .map(|(i, ExpectedParam { key, shape })| {
            let n: usize = shape.iter().product();
            let bytes = (0..n)
                .flat_map(|j| {
                    let v = if key.ends_with("running_var") { 1.0 } else { ((i * 7 + j) % 13) as f32 / 13.0 - 0.4 };
                    v.to_le_bytes()
                })
                .collect();
            (key.clone(), shape.clone(), bytes)
        })
        .collect();
    let entries: Vec<(&str, &str, &[usize], &[u8])> =
        tensors.iter().map(|(k, s, b)| (k.as_str(), "F32", s.as_slice(), b.as_slice())).collect();
    safetensors_file::write(&entries)
}

/// A valid input file for [`fuzz_spec`] (tensor `input`, F32).
pub fn fuzz_input_file() -> Vec<u8> {
    let spec = fuzz_spec();
    let shape = [1, 3, spec.height, spec.width];
    let bytes: Vec<u8> =
        (0..shape.iter().product::<usize>()).flat_map(|i| (i as f32 * 0.37).sin().to_le_bytes()).collect();
    safetensors_file::write(&[("input", "F32", &shape, &bytes)])
}

/// A weight file's parts, kept apart so that edits can break any of them.
#[derive(Clone)]
struct EditedFile {
    /// Header entries in order, as JSON text; a key may repeat.
    entries: Vec<(String, String)>,
    data: Vec<u8>,
    /// Written instead of the header's true length.
    header_len: Option<u64>,
    /// Bytes cut from the end of the file.
    cut: usize,
}

/// The input read as a stream of small numbers; ends by giving zeros.
struct Edits<'a>(&'a [u8]);

impl Edits<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn index(&mut self, len: usize) -> usize {
        if len == 0 {
            0
        } else {
            usize::from(u16::from_le_bytes([self.byte(), self.byte()])) % len
        }
    }

    /// A size near a boundary the reader must check, or an arbitrary one.
    fn size(&mut self, near: u64, data_len: u64) -> u64 {
        match self.byte() % 10 {
            0 => near,
            1 => near.wrapping_add(1),
            2 => near.wrapping_sub(1),
            3 => 0,
            4 => data_len,
            5 => data_len + 1,
            6 => u64::MAX,
            7 => 1 << 62,
            8 => u64::from(u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])),
            _ => u64::from(self.byte()),
        }
    }
}

const DTYPES: &[&str] = &["F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "f32", ""];

impl EditedFile {
    fn from_edits(data: &[u8]) -> Self {
        let mut parts = Self::unedited().clone();
        let mut edits = Edits(data);
        while !edits.0.is_empty() {
            parts.edit(&mut edits);
        }
        parts
    }

    /// [`fuzz_weights_file`] taken apart, once.
    fn unedited() -> &'static Self {
        static UNEDITED: OnceLock<EditedFile> = OnceLock::new();
        UNEDITED.get_or_init(|| {
            let file = fuzz_weights_file();
            let header_len = u64::from_le_bytes(file[..8].try_into().expect("8 bytes")) as usize;
            let tensors = safetensors_file::read(&file).expect("the generated file is valid");
            let mut parts =
                EditedFile { entries: Vec::new(), data: file[8 + header_len..].to_vec(), header_len: None, cut: 0 };
            let mut offset = 0;
            for t in &tensors {
                let end = offset + t.data.len();
                let shape: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
                parts.entries.push((t.name.clone(), entry_json(&t.dtype, &shape, offset as u64, end as u64)));
                offset = end;
            }
            parts
        })
    }

    fn edit(&mut self, edits: &mut Edits<'_>) {
        let data_len = self.data.len() as u64;
        let i = edits.index(self.entries.len());
        let Some((name, _)) = self.entries.get(i).cloned() else {
            self.entries.push(("classifier.0.conv.weight".into(), entry_json("F32", &[3], 0, 12)));
            return;
        };
        let fields = parse_entry(&self.entries[i].1);
        match edits.byte() % 12 {
            0 => {
                if let Some((dtype, shape, begin, end)) = fields {
                    let begin = edits.size(begin, data_len);
                    let end = edits.size(end, data_len);
                    self.entries[i].1 = entry_json(&dtype, &shape, begin, end);
                }
            }
            1 => {
                if let Some((_, shape, begin, end)) = fields {
                    let dtype = DTYPES[edits.index(DTYPES.len())];
                    self.entries[i].1 = entry_json(dtype, &shape, begin, end);
                }
            }
            2 => {
                if let Some((dtype, mut shape, begin, end)) = fields {
                    let dim = edits.index(shape.len() + 1);
                    let size = edits.size(shape.get(dim).copied().unwrap_or(1), data_len);
                    match shape.get_mut(dim) {
                        Some(d) => *d = size,
                        None => shape.push(size),
                    }
                    self.entries[i].1 = entry_json(&dtype, &shape, begin, end);
                }
            }
            3 => {
                if let Some((dtype, mut shape, begin, end)) = fields {
                    shape.pop();
                    self.entries[i].1 = entry_json(&dtype, &shape, begin, end);
                }
            }
            4 => {
                // A second spelling of the same key, or the same key twice in the JSON.
                let spelling = if edits.byte().is_multiple_of(2) { format!("module.{name}") } else { name };
                let entry = self.entries[i].1.clone();
                self.entries.push((spelling, entry));
            }
            5 => {
                self.entries.remove(i);
            }
            6 => {
                self.entries[i].0 = match edits.byte() % 5 {
                    0 => format!("module.{name}"),
                    1 => name.replace("classifier.0.", "classifier."),
                    2 => format!("{name}x"),
                    3 => String::new(),
                    _ => "__metadata__".into(),
                };
            }
            7 => self.header_len = Some(edits.size(0, data_len)),
            8 => self.cut = usize::from(u16::from_le_bytes([edits.byte(), edits.byte()])),
            9 => {
                if !self.data.is_empty() {
                    let at = edits.index(self.data.len() - 1);
                    let bad: [u8; 4] = match edits.byte() % 3 {
                        0 => f32::NAN.to_le_bytes(),
                        1 => f32::INFINITY.to_le_bytes(),
                        _ => [0x00, 0x7c, 0x00, 0xfc], // F16 +inf, -inf
                    };
                    for (k, b) in bad.iter().enumerate() {
                        if let Some(d) = self.data.get_mut(at + k) {
                            *d = *b;
                        }
                    }
                }
            }
            10 => {
                const ODD: &[&str] = &[
                    "null",
                    "3",
                    "\"F32\"",
                    "[]",
                    "{}",
                    r#"{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}"#,
                    r#"{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}"#,
                    r#"{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}"#,
                    r#"{"dtype":"F32","shape":[18446744073709551615,2],"data_offsets":[0,8]}"#,
                    r#"{"dtype":7,"shape":[1],"data_offsets":[0,4]}"#,
                    r#"{"dtype":"F32","data_offsets":[0,4]}"#,
                    r#"{"dtype":"F32","shape":[1]}"#,
                ];
                self.entries[i].1 = ODD[edits.index(ODD.len())].into();
            }
            _ => {
                let metadata = ["{\"format\":\"pt\"}", "{\"n\":1}", "[1]", "\"x\""][edits.index(4)];
                self.entries.push(("__metadata__".into(), metadata.into()));
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let fields: Vec<String> = self
            .entries
            .iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).expect("a string serialises")))
            .collect();
        let header = format!("{{{}}}", fields.join(","));
        let mut out = self.header_len.unwrap_or(header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.data);
        out.truncate(out.len().saturating_sub(self.cut));
        out
    }
}

fn entry_json(dtype: &str, shape: &[u64], begin: u64, end: u64) -> String {
    serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [begin, end] }).to_string()
}

/// An entry this module wrote: `(dtype, shape, begin, end)`; `None` once replaced by odd JSON.
fn parse_entry(json: &str) -> Option<(String, Vec<u64>, u64, u64)> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let dtype = value.get("dtype")?.as_str()?.to_string();
    let shape = value.get("shape")?.as_array()?.iter().map(|d| d.as_u64()).collect::<Option<Vec<_>>>()?;
    let offsets = value.get("data_offsets")?.as_array()?;
    match offsets[..] {
        [ref begin, ref end] => Some((dtype, shape, begin.as_u64()?, end.as_u64()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_files_are_accepted() {
        assert!(Weights::from_bytes(&fuzz_weights_file(), "seed", &fuzz_model().expected_weights()).is_ok());
        // No edits: the structured target's file is the real one, re-encoded.
        let unedited = EditedFile::from_edits(&[]).bytes();
        assert!(Weights::from_bytes(&unedited, "seed", &fuzz_model().expected_weights()).is_ok());
        for (_, target) in TARGETS {
            target(&[]);
        }
        input_tensor(&fuzz_input_file());
    }
}
