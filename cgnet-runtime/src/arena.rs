//! The one buffer that holds every intermediate tensor of a planned model.

/// A zeroed, 64-byte aligned block of `f32`s, allocated once and reused by
/// every inference.
///
/// ```
/// let mut arena = cgnet_runtime::Arena::new(100);
/// assert_eq!(arena.len_bytes(), 128); // rounded up to whole 64-byte blocks
/// assert_eq!(arena.as_f32_mut().as_ptr() as usize % 64, 0);
/// ```
pub struct Arena {
    blocks: Vec<Block>,
    len_bytes: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Block([f32; 16]);

impl Arena {
    /// An arena of at least `bytes` bytes (rounded up to 64).
    pub fn new(bytes: usize) -> Self {
        let blocks = bytes.div_ceil(64);
        Self { blocks: vec![Block([0.0; 16]); blocks], len_bytes: blocks * 64 }
    }

    /// The size in bytes (a multiple of 64).
    pub fn len_bytes(&self) -> usize {
        self.len_bytes
    }

    /// The arena as floats (what generated `run` / `scores` / `segment` take).
    pub fn as_f32(&self) -> &[f32] {
        // SAFETY: `Block` is `repr(C)` over 16 f32s with no padding.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast(), self.blocks.len() * 16) }
    }

    /// The arena as floats, for writing.
    pub fn as_f32_mut(&mut self) -> &mut [f32] {
        // SAFETY: as above, and the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast(), self.blocks.len() * 16) }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn arena_is_aligned_and_rounded() {
        let mut a = super::Arena::new(100);
        assert_eq!(a.len_bytes(), 128);
        assert_eq!(a.as_f32().as_ptr() as usize % 64, 0);
        assert_eq!(a.as_f32_mut().len(), 32);
    }
}
