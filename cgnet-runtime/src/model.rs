//! What generated models share at run time: their error type and the
//! argument checks every entry point makes before any kernel runs.

use crate::kernels::{Exec, Input, Isa, KernelError, Memory, ParallelFor};

/// Why a generated model could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("`{what}` has {found} elements; this model needs {expected}")]
    Length { what: &'static str, expected: usize, found: usize },
    #[error("the arena has {found} bytes; this model needs {expected} (use `ARENA_BYTES` or `new_arena()`)")]
    ArenaTooSmall { expected: usize, found: usize },
    #[error(transparent)]
    Weights(#[from] crate::WeightError),
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("these weights do not fit the compiled program: {0}")]
    Layout(String),
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// A 64-byte aligned value: generated models keep their packed weights in an
/// `Aligned64<[u8; N]>` static so that they can be read as `f32`s in place.
#[repr(C, align(64))]
pub struct Aligned64<T: ?Sized>(pub T);

/// A generated model's packed weights, 64-byte aligned wherever they come
/// from: the static compiled in (borrowed, no copy), or a weight file's packed
/// at run time (copied into an aligned buffer once, when the model is made).
/// A `Vec<f32>` from the system allocator is only 16-byte aligned, and then
/// half of the kernels' 32-byte weight loads straddle two cache lines.
///
/// ```
/// use cgnet_runtime::model::PackedWeights;
///
/// let values: Vec<f32> = (0..100).map(|i| i as f32).collect();
/// let weights = PackedWeights::packed(&values);
/// assert_eq!(weights.as_slice(), &values[..]);
/// assert_eq!(weights.as_slice().as_ptr() as usize % 64, 0);
/// ```
pub struct PackedWeights(Packed);

enum Packed {
    CompiledIn(&'static [f32]),
    /// `len` floats at the start of `buffer`.
    Owned {
        buffer: crate::Arena,
        len: usize,
    },
}

impl PackedWeights {
    /// The weights compiled in: a 64-byte aligned static, borrowed.
    pub fn compiled_in(floats: &'static [f32]) -> Self {
        Self(Packed::CompiledIn(floats))
    }

    /// `values` copied into a 64-byte aligned buffer.
    pub fn packed(values: &[f32]) -> Self {
        let mut buffer = crate::Arena::new(std::mem::size_of_val(values));
        buffer.as_f32_mut()[..values.len()].copy_from_slice(values);
        Self(Packed::Owned { buffer, len: values.len() })
    }

    /// The packed weights, as the kernels read them.
    pub fn as_slice(&self) -> &[f32] {
        match &self.0 {
            Packed::CompiledIn(floats) => floats,
            Packed::Owned { buffer, len } => &buffer.as_f32()[..*len],
        }
    }
}

impl Clone for PackedWeights {
    fn clone(&self) -> Self {
        match &self.0 {
            Packed::CompiledIn(floats) => Self::compiled_in(floats),
            Packed::Owned { .. } => Self::packed(self.as_slice()),
        }
    }
}

impl PartialEq for PackedWeights {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl std::fmt::Debug for PackedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = match self.0 {
            Packed::CompiledIn(_) => "compiled in",
            Packed::Owned { .. } => "packed at run time",
        };
        write!(f, "PackedWeights({} floats, {origin})", self.as_slice().len())
    }
}

/// Little-endian packed weights compiled in, read as floats without copying.
/// (Generated code refuses to compile for big-endian targets.) Bytes that are
/// not 4-aligned or not a whole number of floats give an empty slice, which
/// the first step rejects as a weight offset out of range.
pub fn packed_floats(bytes: &'static [u8]) -> &'static [f32] {
    bytemuck::try_cast_slice(bytes).unwrap_or_default()
}

/// Checks a caller's buffer length.
pub fn check_len(what: &'static str, found: usize, expected: usize) -> Result<(), ModelError> {
    if found == expected {
        Ok(())
    } else {
        Err(ModelError::Length { what, expected, found })
    }
}

/// The caller's output buffer of one entry point.
pub enum Output<'a> {
    Logits(&'a mut [f32]),
    Scores(&'a mut [f32]),
    Labels(&'a mut [u8]),
}

/// Checks the input (`input_len` floats, or as many bytes of a picture) and
/// the arena, and binds them and the output to an executor. Allocates nothing.
#[allow(clippy::too_many_arguments)]
pub fn exec<'a>(
    weights: &'a [f32],
    isa: Isa,
    parallel: Option<&'a dyn ParallelFor>,
    input: Input<'a>,
    input_len: usize,
    arena: &'a mut [f32],
    arena_bytes: usize,
    output: Output<'a>,
) -> Result<Exec<'a>, ModelError> {
    match input {
        Input::Floats(x) => check_len("input", x.len(), input_len)?,
        Input::Rgb8 { pixels, .. } => check_len("picture", pixels.len(), input_len)?,
    }
    let found = std::mem::size_of_val(arena);
    if found < arena_bytes {
        return Err(ModelError::ArenaTooSmall { expected: arena_bytes, found });
    }
    let memory = Memory::with_input(arena, input);
    let memory = match output {
        Output::Logits(logits) => memory.with_logits(logits),
        Output::Scores(scores) => memory.with_scores(scores),
        Output::Labels(labels) => memory.with_labels(labels),
    };
    Ok(Exec::new(memory, weights, isa, parallel))
}
