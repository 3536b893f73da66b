//! How packed weights are made from a weight file: a recipe the compiler emits
//! as constants and this crate executes, so that a compiled model can load
//! weights at run time without the compiler.
//!
//! A recipe names the tensors it reads (the authors' keys and shapes), derives
//! new values from them (BatchNorm folded into convolutions, BatchNorm as an
//! affine, channel slices), and lays values out at fixed offsets of the packed
//! weights (padded per-channel vectors, convolution layouts, the Winograd
//! transform). The compiler packs with the same functions, so a recipe run
//! here gives bit for bit the weights compiled in.

use crate::model::ModelError;
use crate::weights::{ExpectedParam, Weights};

/// A value derived from earlier values (`R` names them: an index into the
/// recipe's values, or the compiler's own handle).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Derivation<R> {
    /// BatchNorm `(gamma, beta, mean, var)` as a per-channel scale: `gamma / sqrt(var + eps)`.
    BnScale { bn: [R; 4], eps: f32 },
    /// ... and shift: `beta - mean * scale`.
    BnShift { bn: [R; 4], eps: f32 },
    /// Convolution weights with the BatchNorm after them folded in: element `i`
    /// times `scale[start + i / per_out]`.
    FoldWeight { weight: R, bn: [R; 4], eps: f32, start: usize, per_out: usize },
    /// The folded bias of output channels `start..start + len`: `shift[c]`, plus
    /// `bias[c - start] * scale[c]` when the convolution had a bias.
    FoldBias { bn: [R; 4], eps: f32, bias: Option<R>, start: usize, len: usize },
    /// Elements `start..start + len`.
    Slice { of: R, start: usize, len: usize },
    /// Input channels `start..start + len` of convolution weights `[co][ci][k][k]`
    /// (`per_in = k * k` elements per input channel): `[co][len][k][k]`.
    SliceInputs { of: R, ci: usize, per_in: usize, start: usize, len: usize },
}

impl<R> Derivation<R> {
    /// The same derivation over other names for its sources.
    pub fn map<S>(&self, mut f: impl FnMut(&R) -> S) -> Derivation<S> {
        let mut bn = |bn: &[R; 4]| [f(&bn[0]), f(&bn[1]), f(&bn[2]), f(&bn[3])];
        match self {
            Self::BnScale { bn: b, eps } => Derivation::BnScale { bn: bn(b), eps: *eps },
            Self::BnShift { bn: b, eps } => Derivation::BnShift { bn: bn(b), eps: *eps },
            Self::FoldWeight { weight, bn: b, eps, start, per_out } => {
                let bn = bn(b);
                Derivation::FoldWeight { weight: f(weight), bn, eps: *eps, start: *start, per_out: *per_out }
            }
            Self::FoldBias { bn: b, eps, bias, start, len } => {
                let bn = bn(b);
                Derivation::FoldBias { bn, eps: *eps, bias: bias.as_ref().map(f), start: *start, len: *len }
            }
            Self::Slice { of, start, len } => Derivation::Slice { of: f(of), start: *start, len: *len },
            Self::SliceInputs { of, ci, per_in, start, len } => {
                Derivation::SliceInputs { of: f(of), ci: *ci, per_in: *per_in, start: *start, len: *len }
            }
        }
    }

    /// Computes the value; `None` when a source has no value.
    pub fn evaluate<'v>(&self, value: impl Fn(&R) -> Option<&'v [f32]>) -> Option<Vec<f32>> {
        let bn = |bn: &[R; 4]| -> Option<[&'v [f32]; 4]> {
            Some([value(&bn[0])?, value(&bn[1])?, value(&bn[2])?, value(&bn[3])?])
        };
        Some(match self {
            Self::BnScale { bn: b, eps } => batch_norm_affine(bn(b)?, *eps).0,
            Self::BnShift { bn: b, eps } => batch_norm_affine(bn(b)?, *eps).1,
            Self::FoldWeight { weight, bn: b, eps, start, per_out } => {
                let (scale, _) = batch_norm_affine(bn(b)?, *eps);
                value(weight)?.iter().enumerate().map(|(i, w)| w * scale[start + i / per_out]).collect()
            }
            Self::FoldBias { bn: b, eps, bias, start, len } => {
                let (scale, shift) = batch_norm_affine(bn(b)?, *eps);
                let bias = match bias {
                    Some(b) => Some(value(b)?),
                    None => None,
                };
                (*start..start + len).map(|c| shift[c] + bias.map_or(0.0, |b| b[c - start] * scale[c])).collect()
            }
            Self::Slice { of, start, len } => value(of)?.get(*start..start + len)?.to_vec(),
            Self::SliceInputs { of, ci, per_in, start, len } => {
                let all = value(of)?;
                let per_out = ci.checked_mul(*per_in).filter(|&n| n > 0 && all.len() % n == 0)?;
                let (from, to) = (start.checked_mul(*per_in)?, start.checked_add(*len)?.checked_mul(*per_in)?);
                let mut out = Vec::with_capacity(all.len() / per_out * len * per_in);
                for o in all.chunks_exact(per_out) {
                    out.extend_from_slice(o.get(from..to)?);
                }
                out
            }
        })
    }
}

/// `scale = gamma / sqrt(var + eps)` and `shift = beta - mean * scale`, in f64.
pub fn batch_norm_affine([gamma, beta, mean, var]: [&[f32]; 4], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f64> =
        gamma.iter().zip(var).map(|(g, v)| f64::from(*g) / (f64::from(*v) + f64::from(eps)).sqrt()).collect();
    let shift =
        beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| (f64::from(*b) - f64::from(*m) * s) as f32).collect();
    (scale.into_iter().map(|s| s as f32).collect(), shift)
}

/// How a value is laid out in the packed weights (the layouts the kernels read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// As is.
    Dense,
    /// A per-channel vector, zero-padded to whole 8-lane vectors plus one.
    PerChannel,
    /// Conv weights `[co][ci][k][k]` -> `[ky][kx][ci][co padded to 8]`.
    Conv { co: usize, ci: usize, k: usize },
    /// 3x3 conv weights -> Winograd F(4x4, 3x3) `U = G g G^T`, `[36][ci][co padded to 8]`.
    Winograd { co: usize, ci: usize },
    /// Depthwise weights `[c][1][3][3]` -> `[ky][kx][c padded as per-channel vectors]`.
    Depthwise { c: usize },
}

impl Layout {
    /// `v` in this layout, values below f32's normal range flushed to zero
    /// (as weights are when loaded: BatchNorm folding and the
    /// Winograd transform can make them from normal weights).
    pub fn apply(self, v: &[f32]) -> Vec<f32> {
        crate::weights::flush_subnormals(self.lay_out(v))
    }

    fn lay_out(self, v: &[f32]) -> Vec<f32> {
        match self {
            Layout::Dense => v.to_vec(),
            Layout::PerChannel => {
                let mut out = v.to_vec();
                out.resize(v.len().next_multiple_of(8) + 8, 0.0);
                out
            }
            Layout::Conv { co, ci, k } => pack_conv(v, co, ci, k),
            Layout::Winograd { co, ci } => pack_winograd(v, co, ci),
            Layout::Depthwise { c } => {
                let c_pad = c.next_multiple_of(8) + 8;
                let mut out = vec![0.0; 9 * c_pad];
                for ch in 0..c {
                    for t in 0..9 {
                        out[t * c_pad + ch] = v[ch * 9 + t];
                    }
                }
                out
            }
        }
    }
}

/// Conv weights `[co][ci][k][k]` -> `[ky][kx][ci][co padded to 8]`, the
/// layout of [`crate::program::Conv`].
pub fn pack_conv(v: &[f32], co: usize, ci: usize, k: usize) -> Vec<f32> {
    let co_pad = co.next_multiple_of(8);
    let mut out = vec![0.0; k * k * ci * co_pad];
    for o in 0..co {
        for i in 0..ci {
            for t in 0..k * k {
                out[(t * ci + i) * co_pad + o] = v[(o * ci + i) * k * k + t];
            }
        }
    }
    out
}

/// 3x3 conv weights `[co][ci][3][3]` -> Winograd F(4x4, 3x3) `U = G g G^T`
/// packed `[36][ci][co padded to 8]`, with the 6x3 `G` of Lavin and Gray
/// (interpolation points 0, 1, -1, 2, -2 and infinity; computed in f64), the
/// layout of [`crate::program::Step::Winograd`].
pub fn pack_winograd(v: &[f32], co: usize, ci: usize) -> Vec<f32> {
    const G: [[f64; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    let co_pad = co.next_multiple_of(8);
    let mut out = vec![0.0; 36 * ci * co_pad];
    for o in 0..co {
        for i in 0..ci {
            let k = |y: usize, x: usize| f64::from(v[((o * ci + i) * 3 + y) * 3 + x]);
            for a in 0..6 {
                for b in 0..6 {
                    let mut u = 0.0;
                    for (y, gay) in G[a].iter().enumerate() {
                        for (x, gbx) in G[b].iter().enumerate() {
                            u += gay * k(y, x) * gbx;
                        }
                    }
                    out[((a * 6 + b) * ci + i) * co_pad + o] = u as f32;
                }
            }
        }
    }
    out
}

/// A tensor a recipe reads from the weight file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileTensor<'a> {
    /// The canonical state-dict key (see [`crate::normalise_key`]).
    pub key: &'a str,
    pub shape: &'a [usize],
}

/// Value `value` laid out with `layout` at `offset` of the packed weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub value: usize,
    pub layout: Layout,
    pub offset: usize,
}

/// The whole recipe. Values are numbered: first `tensors`, then `derived` in
/// order (a derivation only names values before it).
#[derive(Clone, Copy, Debug)]
pub struct Recipe<'a> {
    pub tensors: &'a [FileTensor<'a>],
    pub derived: &'a [Derivation<usize>],
    pub placements: &'a [Placement],
    /// Floats of the packed weights.
    pub len: usize,
    /// A hash of the spec, this recipe and the tool version: packed weights made
    /// for another fingerprint do not fit the program.
    pub fingerprint: &'a str,
}

impl Recipe<'_> {
    /// Checks a `.safetensors` file's bytes against the tensors and packs them.
    /// `origin` names the file in errors.
    pub fn pack(&self, bytes: &[u8], origin: &str) -> Result<Vec<f32>, ModelError> {
        let expected: Vec<ExpectedParam> =
            self.tensors.iter().map(|t| ExpectedParam { key: t.key.to_string(), shape: t.shape.to_vec() }).collect();
        let weights = Weights::from_bytes(bytes, origin, &expected)?;
        let mut values: Vec<Vec<f32>> = Vec::with_capacity(self.tensors.len() + self.derived.len());
        for t in self.tensors {
            values.push(weights.get(t.key).unwrap_or_default().to_vec());
        }
        for (i, d) in self.derived.iter().enumerate() {
            let n = self.tensors.len() + i;
            let value = d
                .evaluate(|r| if *r < n { values.get(*r).map(Vec::as_slice) } else { None })
                .ok_or_else(|| ModelError::Layout(format!("derived value {n} names a later value")))?;
            values.push(value);
        }
        let mut packed = vec![0.0f32; self.len];
        for p in self.placements {
            let source = values
                .get(p.value)
                .ok_or_else(|| ModelError::Layout(format!("placement of value {} that does not exist", p.value)))?;
            let laid = p.layout.apply(source);
            let target = packed
                .get_mut(p.offset..p.offset + laid.len())
                .ok_or_else(|| ModelError::Layout(format!("value {} does not fit at offset {}", p.value, p.offset)))?;
            target.copy_from_slice(&laid);
        }
        if let Some(i) = packed.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Layout(format!(
                "packed weight {i} is {} after folding BatchNorm: the weights are too large for f32",
                packed[i]
            )));
        }
        Ok(packed)
    }
}
