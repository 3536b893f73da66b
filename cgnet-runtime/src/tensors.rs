//! Tensor files for `cgnetc run`: reading the input, writing the outputs.

use std::path::{Path, PathBuf};

use crate::safetensors_file;

#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not a valid safetensors file: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("{} has no tensor named `{name}` (it has: {available})", path.display())]
    MissingTensor { path: PathBuf, name: String, available: String },
    #[error("tensor `{name}` in {} is {dtype}; expected F32, F16 or BF16", path.display())]
    Dtype { path: PathBuf, name: String, dtype: String },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Reads one float tensor (F32, F16 or BF16 on disk) as f32 with its shape.
///
/// ```
/// use cgnet_runtime::{read_f32_tensor, write_tensors_atomically, OutputTensor};
///
/// let path = std::env::temp_dir().join(format!("cgnet-doc-io-{}.safetensors", std::process::id()));
/// let data = [1.0f32, 2.0, 3.0];
/// write_tensors_atomically(&path, &[OutputTensor::F32 { name: "input", shape: vec![1, 3], data: &data }])?;
/// assert_eq!(read_f32_tensor(&path, "input")?, (vec![1, 3], data.to_vec()));
/// assert!(read_f32_tensor(&path, "logits").is_err()); // the error lists the tensors there are
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_f32_tensor(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>), TensorFileError> {
    let bytes = std::fs::read(path).map_err(|source| TensorFileError::Read { path: path.into(), source })?;
    f32_tensor_from_bytes(&bytes, path, name)
}

/// [`read_f32_tensor`] on a file's bytes already in memory; `path` names them in errors.
pub fn f32_tensor_from_bytes(bytes: &[u8], path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>), TensorFileError> {
    let file = safetensors_file::read(bytes).map_err(|reason| TensorFileError::Format { path: path.into(), reason })?;
    let view = file.iter().find(|t| t.name == name).ok_or_else(|| {
        let mut names: Vec<&str> = file.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        TensorFileError::MissingTensor { path: path.into(), name: name.into(), available: names.join(", ") }
    })?;
    let data = crate::weights::to_f32(&view.dtype, view.data).ok_or_else(|| TensorFileError::Dtype {
        path: path.into(),
        name: name.into(),
        dtype: view.dtype.clone(),
    })?;
    Ok((view.shape.clone(), data))
}

/// A tensor to write: f32 or i32 data with its shape.
pub enum OutputTensor<'a> {
    F32 { name: &'a str, shape: Vec<usize>, data: &'a [f32] },
    I32 { name: &'a str, shape: Vec<usize>, data: &'a [i32] },
}

/// Writes a safetensors file through a temporary file in the same folder and
/// a rename, so that a failure never leaves a partial output behind.
pub fn write_tensors_atomically(path: &Path, tensors: &[OutputTensor<'_>]) -> Result<(), TensorFileError> {
    let owned: Vec<(&str, &str, &[usize], Vec<u8>)> = tensors
        .iter()
        .map(|t| match t {
            OutputTensor::F32 { name, shape, data } => {
                (*name, "F32", shape.as_slice(), data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
            OutputTensor::I32 { name, shape, data } => {
                (*name, "I32", shape.as_slice(), data.iter().flat_map(|v| v.to_le_bytes()).collect())
            }
        })
        .collect();
    let entries: Vec<(&str, &str, &[usize], &[u8])> =
        owned.iter().map(|(name, dtype, shape, bytes)| (*name, *dtype, *shape, bytes.as_slice())).collect();
    let bytes = safetensors_file::write(&entries);
    write_atomically(path, &bytes).map_err(|source| TensorFileError::Write { path: path.into(), source })
}

/// Writes `bytes` to `path` via a sibling temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
