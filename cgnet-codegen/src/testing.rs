//! Synthetic weights and inputs for tests and benchmarks: deterministic,
//! and scaled so that activations stay O(1) through every block (as trained
//! weights keep them), which keeps relative comparisons meaningful.

use crate::interp::kernels::Tensor;
use crate::ir::Graph;

/// A small deterministic generator (SplitMix64); tests need reproducibility,
/// not statistical quality.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// Binds plausible random values to every parameter of an unfused graph,
/// chosen by the role its key names.
pub fn bind_random_weights(graph: &mut Graph, seed: u64) {
    let mut rng = Rng::new(seed);
    for handle in graph.params.handles().collect::<Vec<_>>() {
        let p = &graph.params[handle];
        let n = p.len();
        let fan_in: usize = p.shape.iter().skip(1).product::<usize>().max(1);
        let bound = (3.0 / fan_in as f32).sqrt();
        let key = p.key.as_str();
        let values: Vec<f32> = (0..n)
            .map(|_| {
                if key.ends_with("running_var") {
                    rng.uniform(0.5, 2.0)
                } else if key.ends_with("running_mean") || key.ends_with("bn.bias") || key.ends_with(".bias") {
                    rng.uniform(-0.3, 0.3)
                } else if key.ends_with("bn.weight") {
                    rng.uniform(0.5, 1.5)
                } else if key.ends_with("act.weight") {
                    rng.uniform(0.0, 0.5)
                } else {
                    rng.uniform(-bound, bound)
                }
            })
            .collect();
        graph.params[handle].value = Some(values.into());
    }
}

/// An image-like input: uniform 0..255 minus a mean, as the goldens use.
pub fn image_like_input(height: usize, width: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    let mean = [72.39, 82.91, 73.16];
    let mut t = Tensor::zeros(3, height, width);
    for (c, mean) in mean.iter().enumerate() {
        for v in t.plane_mut(c) {
            *v = rng.uniform(0.0, 255.0) - mean;
        }
    }
    t
}

/// `max |a - b| / max(1, max |b|)`: the error measure of the golden cases (`tests/golden/README.md`).
pub fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!((a.c, a.h, a.w), (b.c, b.h, b.w), "shapes differ");
    let scale = b.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let worst = a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0.0f32, |m, d| {
        if d.is_nan() {
            f32::INFINITY
        } else {
            m.max(d)
        }
    });
    worst / scale
}
