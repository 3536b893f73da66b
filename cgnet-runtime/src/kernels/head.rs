//! The head's tails: bilinear upsampling of the logits (align_corners =
//! False, as PyTorch) to scores, or fused with argmax to labels.

use crate::program::View;

/// Source rows/columns and weights of output index `dst`, as PyTorch's
/// `upsample_bilinear2d` computes them for an explicit output size.
#[inline]
pub fn bilinear_tap(in_size: usize, out_size: usize, dst: usize) -> (usize, usize, f32, f32) {
    let scale = in_size as f32 / out_size as f32;
    let src = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
    let i0 = (src as usize).min(in_size - 1);
    let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
    let l1 = src - i0 as f32;
    (i0, i1, 1.0 - l1, l1)
}

/// Calls `f(oy, ox, score_of_channel)` for every output pixel.
#[inline]
fn for_each_pixel(
    src: &[f32],
    v: &View,
    height: usize,
    width: usize,
    mut f: impl FnMut(usize, usize, &dyn Fn(usize) -> f32),
) {
    for oy in 0..height {
        let (y0, y1, wy0, wy1) = bilinear_tap(v.h, height, oy);
        for ox in 0..width {
            let (x0, x1, wx0, wx1) = bilinear_tap(v.w, width, ox);
            let score = |c: usize| {
                let top = wx0 * src[v.at(c, y0, x0)] + wx1 * src[v.at(c, y0, x1)];
                let bottom = wx0 * src[v.at(c, y1, x0)] + wx1 * src[v.at(c, y1, x1)];
                wy0 * top + wy1 * bottom
            };
            f(oy, ox, &score);
        }
    }
}

/// Scores NCHW `[c, height, width]` from logits at `v` in `src`.
pub fn upsample(src: &[f32], v: &View, scores: &mut [f32], height: usize, width: usize) {
    let plane = height * width;
    for_each_pixel(src, v, height, width, |oy, ox, score| {
        for c in 0..v.c {
            scores[c * plane + oy * width + ox] = score(c);
        }
    });
}

/// Labels `[height * width]`: the first channel with the largest upsampled score.
pub fn upsample_argmax(src: &[f32], v: &View, labels: &mut [u8], height: usize, width: usize) {
    for_each_pixel(src, v, height, width, |oy, ox, score| {
        let (mut best, mut best_score) = (0, score(0));
        for c in 1..v.c {
            let s = score(c);
            if s > best_score {
                (best, best_score) = (c, s);
            }
        }
        labels[oy * width + ox] = best as u8;
    });
}
