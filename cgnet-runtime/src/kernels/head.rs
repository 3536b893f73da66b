//! The tails of the head, as steps: bilinear upsampling of the logits
//! (align_corners = False, as PyTorch) to scores, or fused with an argmax to
//! labels. Scalar code for every instruction set: the tails are a few percent
//! of an inference. Each works on a range of output rows.

use std::ops::Range;

use super::Memory;
use crate::program::{Upsample, UpsampleArgmax, View};

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

/// Calls `f(oy, ox, score_of_channel)` for every output pixel of rows `rows`
/// of a `height x width` resize of `v` (whose floats start at `src`).
///
/// # Safety
/// `v` is in bounds of the memory at `src`, which no thread writes meanwhile.
#[inline]
unsafe fn for_each_pixel(
    src: *const f32,
    v: &View,
    height: usize,
    width: usize,
    rows: Range<usize>,
    mut f: impl FnMut(usize, usize, &dyn Fn(usize) -> f32),
) {
    for oy in rows {
        let (y0, y1, wy0, wy1) = bilinear_tap(v.h, height, oy);
        for ox in 0..width {
            let (x0, x1, wx0, wx1) = bilinear_tap(v.w, width, ox);
            // SAFETY: taps are inside the view (`bilinear_tap` clamps to its size), which is in bounds.
            let at = |c: usize, y: usize, x: usize| unsafe { *src.add(v.at(c, y, x)) };
            let score = |c: usize| {
                let top = wx0 * at(c, y0, x0) + wx1 * at(c, y0, x1);
                let bottom = wx0 * at(c, y1, x0) + wx1 * at(c, y1, x1);
                wy0 * top + wy1 * bottom
            };
            f(oy, ox, &score);
        }
    }
}

/// Rows `rows` of the scores.
///
/// # Safety
/// As for every kernel (`Exec::step` checked the views, their shapes and
/// that `dst` does not alias `src`); this thread owns rows `rows` of `dst`.
pub(super) unsafe fn upsample_rows(m: &Memory, s: &Upsample, rows: Range<usize>) {
    let (src, dst) = (m.base(s.src.mem).0.cast_const(), m.base(s.dst.mem).0);
    let store = |oy: usize, ox: usize, score: &dyn Fn(usize) -> f32| {
        for c in 0..s.dst.c {
            // SAFETY: (c, oy, ox) is inside the checked destination view; this thread owns row `oy`.
            unsafe { *dst.add(s.dst.at(c, oy, ox)) = score(c) };
        }
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { for_each_pixel(src, &s.src, s.dst.h, s.dst.w, rows, store) }
}

/// Rows `rows` of the labels: the first channel with the largest upsampled score.
///
/// # Safety
/// As for [`upsample_rows`]; `dst` is a checked `Mem::Labels` view and the
/// source has at most 256 channels.
pub(super) unsafe fn upsample_argmax_rows(m: &Memory, s: &UpsampleArgmax, rows: Range<usize>) {
    let src = m.base(s.src.mem).0.cast_const();
    let labels = m.labels.0;
    let store = |oy: usize, ox: usize, score: &dyn Fn(usize) -> f32| {
        let (mut best, mut best_score) = (0, score(0));
        for c in 1..s.src.c {
            let value = score(c);
            if value > best_score {
                (best, best_score) = (c, value);
            }
        }
        // SAFETY: (0, oy, ox) is inside the checked labels view; this thread owns row `oy`;
        // `best < 256` (checked), so the cast is exact.
        unsafe { *labels.add(s.dst.at(0, oy, ox)) = best as u8 };
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { for_each_pixel(src, &s.src, s.dst.h, s.dst.w, rows, store) }
}
