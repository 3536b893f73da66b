//! The `.safetensors` container, read and written without serde: an 8-byte
//! little-endian header length, a JSON header
//! (`{"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [BEGIN, END]}, "__metadata__": {..}}`)
//! and the tensors' bytes. The JSON is parsed by miniserde, so a crate that
//! runs a compiled model carries no serde / serde_json.
//!
//! Every malformed file is an error naming what is wrong; nothing is allocated
//! from a size in the file before it is checked against the file's length.

use miniserde::json::{self, Array, Number, Object, Value};

/// One tensor of a file, borrowing its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry<'a> {
    pub name: String,
    /// As written in the file: `F32`, `F16`, `BF16`, `I64`, ...
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: &'a [u8],
}

/// Bytes per element of the dtypes of the format.
fn element_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

fn usizes(value: Option<&Value>, what: &str, name: &str) -> Result<Vec<usize>, String> {
    let Some(Value::Array(items)) = value else {
        return Err(format!("tensor `{name}` has no `{what}` array"));
    };
    items
        .iter()
        .map(|item| match item {
            Value::Number(Number::U64(n)) => usize::try_from(*n).ok(),
            _ => None,
        })
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| format!("tensor `{name}`: `{what}` holds something other than sizes"))
}

/// The tensors of a `.safetensors` file's bytes, in the header's key order.
pub fn read(bytes: &[u8]) -> Result<Vec<TensorEntry<'_>>, String> {
    let Some((length, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(format!("{} bytes is shorter than the 8-byte header length", bytes.len()));
    };
    let length = u64::from_le_bytes(*length);
    let header_len = usize::try_from(length)
        .ok()
        .filter(|n| *n <= rest.len())
        .ok_or_else(|| format!("header length {length} exceeds the {} bytes after it", rest.len()))?;
    let (header, data) = rest.split_at(header_len);
    let header = std::str::from_utf8(header).map_err(|_| "the header is not UTF-8".to_string())?;
    let header: Value = json::from_str(header).map_err(|_| "the header is not valid JSON".to_string())?;
    let Value::Object(entries) = header else {
        return Err("the header is not a JSON object".into());
    };
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, entry) in entries.iter() {
        if name == "__metadata__" {
            continue;
        }
        let Value::Object(fields) = entry else {
            return Err(format!("tensor `{name}` is not described by an object"));
        };
        let dtype = match fields.get("dtype") {
            Some(Value::String(dtype)) => dtype.clone(),
            _ => return Err(format!("tensor `{name}` has no `dtype` string")),
        };
        let size = element_size(&dtype).ok_or_else(|| format!("tensor `{name}` has an unknown dtype `{dtype}`"))?;
        let shape = usizes(fields.get("shape"), "shape", name)?;
        let offsets = usizes(fields.get("data_offsets"), "data_offsets", name)?;
        let [begin, end] = offsets[..] else {
            return Err(format!("tensor `{name}`: `data_offsets` must hold two sizes"));
        };
        if begin > end || end > data.len() {
            return Err(format!("tensor `{name}`: bytes {begin}..{end} are outside the {} data bytes", data.len()));
        }
        let expected = shape.iter().try_fold(size, |n, d| n.checked_mul(*d));
        if expected != Some(end - begin) {
            return Err(format!("tensor `{name}`: shape {shape:?} of {dtype} does not fit its {} bytes", end - begin));
        }
        tensors.push(TensorEntry { name: name.clone(), dtype, shape, data: &data[begin..end] });
    }
    Ok(tensors)
}

/// A file holding `tensors` (`(name, dtype, shape, little-endian bytes)`).
pub fn write(tensors: &[(&str, &str, &[usize], &[u8])]) -> Vec<u8> {
    let mut header = Object::new();
    let mut offset = 0u64;
    for (name, dtype, shape, bytes) in tensors {
        let mut entry = Object::new();
        entry.insert("dtype".into(), Value::String((*dtype).into()));
        let mut dims = Array::new();
        dims.extend(shape.iter().map(|d| Value::Number(Number::U64(*d as u64))));
        entry.insert("shape".into(), Value::Array(dims));
        let end = offset + bytes.len() as u64;
        let mut offsets = Array::new();
        offsets.extend([Value::Number(Number::U64(offset)), Value::Number(Number::U64(end))]);
        entry.insert("data_offsets".into(), Value::Array(offsets));
        header.insert((*name).into(), Value::Object(entry));
        offset = end;
    }
    let mut text = json::to_string(&Value::Object(header));
    // The format pads the header with spaces so that the data starts 8-byte aligned.
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset as usize);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let floats: Vec<u8> = [1.0f32, -2.0, 3.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let ints: Vec<u8> = [7i32, 8].iter().flat_map(|v| v.to_le_bytes()).collect();
        let file = write(&[("a.weight", "F32", &[3], &floats), ("labels", "I32", &[1, 2], &ints)]);
        assert_eq!((file.len() - 8 - floats.len() - ints.len()) % 8, 0, "data starts aligned");
        let tensors = read(&file).unwrap();
        assert_eq!(tensors.len(), 2);
        assert_eq!(
            (tensors[0].name.as_str(), tensors[0].dtype.as_str(), &tensors[0].shape[..]),
            ("a.weight", "F32", &[3][..])
        );
        assert_eq!(tensors[0].data, &floats[..]);
        assert_eq!(
            (tensors[1].name.as_str(), &tensors[1].shape[..], tensors[1].data),
            ("labels", &[1, 2][..], &ints[..])
        );
    }

    #[test]
    fn malformed_files_are_errors() {
        let good = write(&[("x", "F32", &[2], &[0; 8])]);
        let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let with_header = |header: &str| {
            let mut out = (header.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&[0; 8]);
            out
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..5].to_vec(), "shorter than the 8-byte header length"),
            (good[..8 + header_len - 1].to_vec(), "exceeds"),
            ([u64::MAX.to_le_bytes().as_slice(), &[0; 16]].concat(), "header length 18446744073709551615 exceeds"),
            (with_header("[1, 2]"), "not a JSON object"),
            (with_header("{\"x\": "), "not valid JSON"),
            (with_header(r#"{"x": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}}"#), "unknown dtype `F99`"),
            (with_header(r#"{"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#), "does not fit"),
            (with_header(r#"{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}"#), "outside"),
            (with_header(r#"{"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#), "other than sizes"),
            (
                with_header(
                    r#"{"x": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 8]}}"#,
                ),
                "does not fit",
            ),
        ];
        for (bytes, expected) in cases {
            let err = read(&bytes).unwrap_err();
            assert!(err.contains(expected), "{err:?} should say {expected:?}");
        }
        let metadata = with_header(
            r#"{"__metadata__": {"format": "pt"}, "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#,
        );
        assert_eq!(read(&metadata).unwrap().len(), 1);
    }
}
