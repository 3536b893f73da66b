//! Reading weights from `.safetensors`, checked against what a model expects.
//!
//! The authors' checkpoints come in several spellings: keys prefixed with
//! `module.` (saved from `nn.DataParallel`), the head named
//! `classifier.conv.weight` (older code) instead of `classifier.0.conv.weight`,
//! and BatchNorm's `num_batches_tracked` counters. All are accepted. Every
//! problem in a file is reported at once, so a user fixes a checkpoint in one go.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::safetensors_file::{self, TensorEntry};

/// A tensor the model needs: its canonical state-dict key and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedParam {
    pub key: String,
    pub shape: Vec<usize>,
}

/// One thing wrong with a weight file.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightProblem {
    Missing {
        key: String,
        shape: Vec<usize>,
    },
    Unexpected {
        key: String,
    },
    WrongShape {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    UnsupportedDtype {
        key: String,
        dtype: String,
    },
    /// Two keys of the file normalise to the same canonical key.
    Duplicate {
        key: String,
        spellings: Vec<String>,
    },
    /// A NaN or an infinity (the first one of the tensor, at a flat index).
    NonFinite {
        key: String,
        index: usize,
        value: f32,
    },
}

impl fmt::Display for WeightProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { key, shape } => write!(f, "missing key `{key}` (expected shape {shape:?})"),
            Self::Unexpected { key } => write!(f, "unexpected key `{key}` (not part of this model)"),
            Self::WrongShape { key, expected, found } => {
                write!(f, "wrong shape for `{key}`: expected {expected:?}, found {found:?}")
            }
            Self::UnsupportedDtype { key, dtype } => {
                write!(f, "unsupported dtype {dtype} for `{key}` (accepted: F32, F16, BF16)")
            }
            Self::Duplicate { key, spellings } => {
                write!(f, "key `{key}` is given more than once: {}", spellings.join(", "))
            }
            Self::NonFinite { key, index, value } => {
                write!(f, "`{key}` holds {value} at flat index {index}; weights must be finite")
            }
        }
    }
}

/// Why weights could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("cannot read weights file {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{origin} is not a valid safetensors file: {reason}")]
    Format { origin: String, reason: String },
    #[error("{origin} does not match the model ({} problem{})", problems.len(), if problems.len() == 1 { "" } else { "s" })]
    Mismatch { origin: String, problems: Vec<WeightProblem> },
}

impl WeightError {
    /// Detail lines (one per problem) for a caller that prints them indented.
    pub fn details(&self) -> Vec<String> {
        match self {
            Self::Mismatch { problems, .. } => problems.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        }
    }
}

/// Maps a key of the authors' checkpoints to its canonical spelling, or `None`
/// for entries that carry no weights (`num_batches_tracked`).
pub fn normalise_key(key: &str) -> Option<String> {
    let key = key.strip_prefix("module.").unwrap_or(key);
    if key.ends_with("num_batches_tracked") {
        return None;
    }
    match key.strip_prefix("classifier.conv.") {
        Some(rest) => Some(format!("classifier.0.conv.{rest}")),
        None => Some(key.to_string()),
    }
}

/// Checked float32 weights, by canonical key.
#[derive(Clone, Debug, Default)]
pub struct Weights {
    tensors: BTreeMap<String, Vec<f32>>,
}

impl Weights {
    /// Reads and checks a weight file (memory-mapped). Every problem (missing or
    /// unexpected keys, wrong shapes, unsupported dtypes) is reported at once.
    ///
    /// ```
    /// use cgnet_runtime::{ExpectedParam, Weights};
    /// use safetensors::{tensor::TensorView, Dtype};
    ///
    /// // A one-tensor file, saved by PyTorch under `DataParallel` (the `module.` prefix).
    /// let data: Vec<u8> = [0.5f32, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    /// let view = TensorView::new(Dtype::F32, vec![2], &data)?;
    /// let path = std::env::temp_dir().join(format!("cgnet-doc-{}.safetensors", std::process::id()));
    /// safetensors::serialize_to_file([("module.b1.bn.weight", view)], &None, &path)?;
    ///
    /// let expected = [ExpectedParam { key: "b1.bn.weight".into(), shape: vec![2] }];
    /// let weights = Weights::load(&path, &expected)?;
    /// assert_eq!(weights.get("b1.bn.weight"), Some(&[0.5, -1.0][..]));
    ///
    /// let wrong = [ExpectedParam { key: "b1.bn.weight".into(), shape: vec![3] }];
    /// let err = Weights::load(&path, &wrong).unwrap_err();
    /// assert!(err.to_string().contains("does not match the model"), "{err}");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load(path: &Path, expected: &[ExpectedParam]) -> Result<Self, WeightError> {
        let io = |source| WeightError::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and dropped before this function returns;
        // a concurrent truncation of the file by another process is the only
        // hazard, as for every memory-mapped reader.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_bytes(&map, &path.display().to_string(), expected)
    }

    /// Checks weights held in memory; `origin` names them in errors.
    pub fn from_bytes(bytes: &[u8], origin: &str, expected: &[ExpectedParam]) -> Result<Self, WeightError> {
        let file = safetensors_file::read(bytes)
            .map_err(|reason| WeightError::Format { origin: origin.to_string(), reason })?;
        let mut problems = Vec::new();
        let mut found: BTreeMap<String, Vec<(String, TensorEntry<'_>)>> = BTreeMap::new();
        for entry in file {
            if let Some(key) = normalise_key(&entry.name) {
                found.entry(key).or_default().push((entry.name.clone(), entry));
            }
        }
        let mut tensors = BTreeMap::new();
        for param in expected {
            let Some(entries) = found.remove(&param.key) else {
                problems.push(WeightProblem::Missing { key: param.key.clone(), shape: param.shape.clone() });
                continue;
            };
            if entries.len() > 1 {
                problems.push(WeightProblem::Duplicate {
                    key: param.key.clone(),
                    spellings: entries.iter().map(|(n, _)| n.clone()).collect(),
                });
                continue;
            }
            let (_, view) = &entries[0];
            if view.shape != param.shape {
                problems.push(WeightProblem::WrongShape {
                    key: param.key.clone(),
                    expected: param.shape.clone(),
                    found: view.shape.clone(),
                });
                continue;
            }
            match to_f32(&view.dtype, view.data).map(flush_subnormals) {
                Some(values) => match values.iter().position(|v| !v.is_finite()) {
                    Some(index) => {
                        problems.push(WeightProblem::NonFinite { key: param.key.clone(), index, value: values[index] })
                    }
                    None => {
                        tensors.insert(param.key.clone(), values);
                    }
                },
                None => {
                    problems.push(WeightProblem::UnsupportedDtype { key: param.key.clone(), dtype: view.dtype.clone() })
                }
            }
        }
        problems.extend(found.into_keys().map(|key| WeightProblem::Unexpected { key }));
        if problems.is_empty() {
            Ok(Self { tensors })
        } else {
            Err(WeightError::Mismatch { origin: origin.to_string(), problems })
        }
    }

    /// The values of a checked key; `None` only for a key that was not expected.
    pub fn get(&self, key: &str) -> Option<&[f32]> {
        self.tensors.get(key).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
}

/// Little-endian float data of the accepted dtypes, widened to f32.
/// Weights below f32's normal range (|w| < 1.18e-38) become zero. The
/// authors' CamVid checkpoint holds 256,385 of them (half its values): every
/// multiply with one takes a slow microcode path on x86, which made the CamVid
/// model 8x slower than the same network with other weights (6.3 against 53
/// GFLOP/s). Their contribution is below 1e-37 of an activation.
pub(crate) fn flush_subnormals(mut values: Vec<f32>) -> Vec<f32> {
    for v in &mut values {
        if v.is_subnormal() {
            *v = 0.0;
        }
    }
    values
}

pub(crate) fn to_f32(dtype: &str, data: &[u8]) -> Option<Vec<f32>> {
    let words = |n: usize| data.chunks_exact(n);
    Some(match dtype {
        "F32" => words(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        "F16" => words(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        "BF16" => words(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_spellings_normalise() {
        assert_eq!(normalise_key("module.level1_0.conv.weight").unwrap(), "level1_0.conv.weight");
        assert_eq!(normalise_key("classifier.conv.weight").unwrap(), "classifier.0.conv.weight");
        assert_eq!(normalise_key("module.classifier.conv.weight").unwrap(), "classifier.0.conv.weight");
        assert_eq!(normalise_key("b1.bn.num_batches_tracked"), None);
        assert_eq!(normalise_key("classifier.0.conv.weight").unwrap(), "classifier.0.conv.weight");
    }
}
