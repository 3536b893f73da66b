//! The reference kernels: plain loops over CHW tensors, written to be obviously
//! right rather than fast. Every emitted kernel is tested against these.

// Index loops mirror the formulas; iterator chains would obscure the oracle.
#![allow(clippy::needless_range_loop)]

/// One image: `c` channels of `h` x `w`, channel-major (CHW).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w, data: vec![0.0; c * h * w] }
    }

    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.h + y) * self.w + x]
    }

    pub fn at_mut(&mut self, c: usize, y: usize, x: usize) -> &mut f32 {
        &mut self.data[(c * self.h + y) * self.w + x]
    }

    pub fn plane(&self, c: usize) -> &[f32] {
        &self.data[c * self.h * self.w..(c + 1) * self.h * self.w]
    }

    pub fn plane_mut(&mut self, c: usize) -> &mut [f32] {
        let n = self.h * self.w;
        &mut self.data[c * n..(c + 1) * n]
    }
}

/// Geometry of a 2-D convolution with zero padding `dilation * (k - 1) / 2`.
#[derive(Clone, Copy, Debug)]
pub struct ConvGeometry {
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub groups: usize,
}

/// Convolution (cross-correlation, as PyTorch). `weight` is `[out, in/groups, k, k]`.
pub fn conv2d(x: &Tensor, weight: &[f32], bias: Option<&[f32]>, out_c: usize, g: ConvGeometry) -> Tensor {
    let pad = (g.dilation * (g.kernel - 1) / 2) as isize;
    let (oh, ow) = (x.h.div_ceil(g.stride), x.w.div_ceil(g.stride));
    let in_per_group = x.c / g.groups;
    let out_per_group = out_c / g.groups;
    let mut out = Tensor::zeros(out_c, oh, ow);
    for o in 0..out_c {
        let group = o / out_per_group;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias.map_or(0.0, |b| b[o]);
                for i in 0..in_per_group {
                    let ci = group * in_per_group + i;
                    for ky in 0..g.kernel {
                        let iy = (oy * g.stride + ky * g.dilation) as isize - pad;
                        if iy < 0 || iy >= x.h as isize {
                            continue;
                        }
                        for kx in 0..g.kernel {
                            let ix = (ox * g.stride + kx * g.dilation) as isize - pad;
                            if ix < 0 || ix >= x.w as isize {
                                continue;
                            }
                            let wv = weight[((o * in_per_group + i) * g.kernel + ky) * g.kernel + kx];
                            acc += wv * x.at(ci, iy as usize, ix as usize);
                        }
                    }
                }
                *out.at_mut(o, oy, ox) = acc;
            }
        }
    }
    out
}

/// Inference BatchNorm: `(x - mean) / sqrt(var + eps) * gamma + beta`.
pub fn batch_norm(x: &mut Tensor, gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f32) {
    for c in 0..x.c {
        let inv = 1.0 / (var[c] + eps).sqrt();
        for v in x.plane_mut(c) {
            *v = (*v - mean[c]) * inv * gamma[c] + beta[c];
        }
    }
}

/// `x * scale[c] + shift[c]`.
pub fn affine(x: &mut Tensor, scale: &[f32], shift: &[f32]) {
    for c in 0..x.c {
        for v in x.plane_mut(c) {
            *v = *v * scale[c] + shift[c];
        }
    }
}

/// PReLU with one slope per channel.
pub fn prelu(x: &mut Tensor, slope: &[f32]) {
    for c in 0..x.c {
        for v in x.plane_mut(c) {
            if *v < 0.0 {
                *v *= slope[c];
            }
        }
    }
}

pub fn relu(x: &mut Tensor) {
    for v in &mut x.data {
        *v = v.max(0.0);
    }
}

pub fn sigmoid(x: &mut Tensor) {
    for v in &mut x.data {
        *v = 1.0 / (1.0 + (-*v).exp());
    }
}

/// `AvgPool2d(3, stride=2, padding=1)` with the padding counted (divisor 9).
pub fn avg_pool_3s2(x: &Tensor) -> Tensor {
    let (oh, ow) = (x.h.div_ceil(2), x.w.div_ceil(2));
    let mut out = Tensor::zeros(x.c, oh, ow);
    for c in 0..x.c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = 0.0;
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                        if iy >= 0 && ix >= 0 && (iy as usize) < x.h && (ix as usize) < x.w {
                            sum += x.at(c, iy as usize, ix as usize);
                        }
                    }
                }
                *out.at_mut(c, oy, ox) = sum / 9.0;
            }
        }
    }
    out
}

pub fn global_avg_pool(x: &Tensor) -> Tensor {
    let mut out = Tensor::zeros(x.c, 1, 1);
    for c in 0..x.c {
        out.data[c] = x.plane(c).iter().sum::<f32>() / (x.h * x.w) as f32;
    }
    out
}

/// `weight` is `[out, in]`.
pub fn linear(x: &Tensor, weight: &[f32], bias: &[f32]) -> Tensor {
    let n = x.data.len();
    let mut out = Tensor::zeros(bias.len(), 1, 1);
    for (o, value) in out.data.iter_mut().enumerate() {
        *value = bias[o] + (0..n).map(|i| weight[o * n + i] * x.data[i]).sum::<f32>();
    }
    out
}

pub fn channel_scale(x: &Tensor, s: &Tensor) -> Tensor {
    let mut out = x.clone();
    for c in 0..x.c {
        for v in out.plane_mut(c) {
            *v *= s.data[c];
        }
    }
    out
}

pub fn add(a: &Tensor, b: &Tensor) -> Tensor {
    Tensor { data: a.data.iter().zip(&b.data).map(|(x, y)| x + y).collect(), ..*a }
}

/// F_glo's squeeze and excitation: the per-channel scale `sigmoid(fc2(relu(fc1(mean(x)))))`.
pub fn global_context_scale(x: &Tensor, fc1: (&[f32], &[f32]), fc2: (&[f32], &[f32])) -> Tensor {
    let mut hidden = linear(&global_avg_pool(x), fc1.0, fc1.1);
    relu(&mut hidden);
    let mut scale = linear(&hidden, fc2.0, fc2.1);
    sigmoid(&mut scale);
    scale
}

/// Source index and weights along one axis, as PyTorch's `upsample_bilinear2d`
/// with `align_corners=False` and an explicit output size computes them.
pub fn bilinear_taps(in_size: usize, out_size: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|dst| {
            let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(in_size - 1);
            let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
            let l1 = src - i0 as f32;
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// Bilinear resize of every channel to `oh` x `ow`.
pub fn upsample_bilinear(x: &Tensor, oh: usize, ow: usize) -> Tensor {
    let (ys, xs) = (bilinear_taps(x.h, oh), bilinear_taps(x.w, ow));
    let mut out = Tensor::zeros(x.c, oh, ow);
    for c in 0..x.c {
        for (oy, &(y0, y1, wy0, wy1)) in ys.iter().enumerate() {
            for (ox, &(x0, x1, wx0, wx1)) in xs.iter().enumerate() {
                let top = wx0 * x.at(c, y0, x0) + wx1 * x.at(c, y0, x1);
                let bottom = wx0 * x.at(c, y1, x0) + wx1 * x.at(c, y1, x1);
                *out.at_mut(c, oy, ox) = wy0 * top + wy1 * bottom;
            }
        }
    }
    out
}

/// Index of the first largest channel at each pixel, as f32.
pub fn argmax(x: &Tensor) -> Tensor {
    let mut out = Tensor::zeros(1, x.h, x.w);
    for p in 0..x.h * x.w {
        let mut best = 0;
        for c in 1..x.c {
            if x.data[c * x.h * x.w + p] > x.data[best * x.h * x.w + p] {
                best = c;
            }
        }
        out.data[p] = best as f32;
    }
    out
}

/// Bilinear upsample and argmax, one output row at a time, so the full
/// resolution scores never exist.
pub fn upsample_argmax(x: &Tensor, oh: usize, ow: usize) -> Tensor {
    let (ys, xs) = (bilinear_taps(x.h, oh), bilinear_taps(x.w, ow));
    let mut out = Tensor::zeros(1, oh, ow);
    for (oy, &(y0, y1, wy0, wy1)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, wx0, wx1)) in xs.iter().enumerate() {
            let score = |c| {
                let top = wx0 * x.at(c, y0, x0) + wx1 * x.at(c, y0, x1);
                let bottom = wx0 * x.at(c, y1, x0) + wx1 * x.at(c, y1, x1);
                wy0 * top + wy1 * bottom
            };
            let (mut best, mut best_score) = (0, score(0));
            for c in 1..x.c {
                let s = score(c);
                if s > best_score {
                    (best, best_score) = (c, s);
                }
            }
            *out.at_mut(0, oy, ox) = best as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_counts_padding() {
        let x = Tensor { c: 1, h: 2, w: 2, data: vec![9.0; 4] };
        // The corner window covers 4 real pixels of 9.
        assert_eq!(avg_pool_3s2(&x).data, vec![4.0]);
    }

    #[test]
    fn bilinear_matches_pytorch_on_a_small_case() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4), mode="bilinear")
        let x = Tensor { c: 1, h: 1, w: 2, data: vec![0.0, 1.0] };
        assert_eq!(upsample_bilinear(&x, 1, 4).data, vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn depthwise_dilated_conv_reads_dilated_taps() {
        let x = Tensor { c: 1, h: 5, w: 5, data: (0..25).map(|v| v as f32).collect() };
        let mut w = vec![0.0; 9];
        w[8] = 1.0; // bottom-right tap
        let g = ConvGeometry { kernel: 3, stride: 1, dilation: 2, groups: 1 };
        let y = conv2d(&x, &w, None, 1, g);
        assert_eq!(y.at(0, 0, 0), x.at(0, 2, 2));
        assert_eq!(y.at(0, 3, 3), 0.0);
    }
}
