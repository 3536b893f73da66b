//! The steps of a compiled model: kernel calls whose every shape, stride and
//! offset is a constant. The compiler (`cgnet-codegen::back::program`) builds
//! them; generated Rust holds them as `const` literals and calls
//! [`crate::kernels`] with them; the C emitter prints the same calls in C.

/// Which memory a view addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mem {
    /// The planned arena.
    Arena,
    /// The caller's input image, NCHW `[1, 3, H, W]`.
    Input,
    /// The caller's logits, NCHW.
    Logits,
    /// The caller's full-resolution scores, NCHW.
    Scores,
    /// The caller's labels, one byte (not float) per pixel: `[H, W]`.
    Labels,
}

/// A strided 3-D window: element `(c, y, x)` is at
/// `offset + y * row_stride + x * pixel_stride + c * channel_stride` (in f32s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub mem: Mem,
    pub offset: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub row_stride: usize,
    pub pixel_stride: usize,
    pub channel_stride: usize,
}

impl View {
    /// Index of element `(c, y, x)`.
    #[inline(always)]
    pub fn at(&self, c: usize, y: usize, x: usize) -> usize {
        self.offset + y * self.row_stride + x * self.pixel_stride + c * self.channel_stride
    }

    /// One past the last element addressed (`usize::MAX` when that overflows,
    /// so that such a view fails every bounds check).
    pub fn end(&self) -> usize {
        if self.c == 0 || self.h == 0 || self.w == 0 {
            return self.offset;
        }
        let term = |n: usize, stride: usize| (n - 1).checked_mul(stride);
        let last = [term(self.h, self.row_stride), term(self.w, self.pixel_stride), term(self.c, self.channel_stride)]
            .into_iter()
            .try_fold(self.offset, |sum, t| sum.checked_add(t?));
        last.and_then(|l| l.checked_add(1)).unwrap_or(usize::MAX)
    }

    /// Whether distinct rows `y` address distinct elements (so threads that
    /// write different rows never write the same float): each row fits in its
    /// row stride, or rows nest inside channel planes (NCHW).
    pub fn rows_disjoint(&self) -> bool {
        let span = |n: usize, stride: usize| n.saturating_sub(1).saturating_mul(stride);
        let pixels = span(self.w, self.pixel_stride);
        self.h <= 1
            || pixels.saturating_add(span(self.c, self.channel_stride)) < self.row_stride
            || (pixels < self.row_stride
                && (self.c <= 1 || self.h.saturating_mul(self.row_stride) <= self.channel_stride))
    }

    /// Whether the two views may address a common element. Exact for views of
    /// different memories, disjoint ranges, and disjoint channel slices of one
    /// NHWC buffer; conservative (`true`) otherwise.
    pub fn may_overlap(&self, other: &View) -> bool {
        if self.mem != other.mem
            || self.c == 0
            || other.c == 0
            || self.h == 0
            || other.h == 0
            || self.w == 0
            || other.w == 0
        {
            return false;
        }
        if self.end() <= other.offset || other.end() <= self.offset {
            return false;
        }
        let p = self.pixel_stride;
        let same_grid = self.channel_stride == 1
            && other.channel_stride == 1
            && p > 0
            && other.pixel_stride == p
            && self.row_stride % p == 0
            && other.row_stride % p == 0;
        if same_grid {
            // Every element's index modulo the pixel stride is its channel slot.
            let (a, b) = (self.offset % p, other.offset % p);
            if a + self.c <= p && b + other.c <= p && (a + self.c <= b || b + other.c <= a) {
                return false;
            }
        }
        true
    }

    /// Whether channels are contiguous (the internal NHWC layout).
    pub fn is_nhwc(&self) -> bool {
        self.channel_stride == 1
    }
}

/// An activation applied per channel. `Prelu` holds the offset of its slopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Prelu(usize),
}

/// What happens to a value between the kernel's accumulator and its store:
/// `act2(affine(act(x)))`. Offsets index the packed weights; every per-channel
/// vector is padded with zeros to a multiple of 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epilogue {
    pub act: Act,
    /// `(scale, shift)`.
    pub affine: Option<(usize, usize)>,
    pub act2: Act,
}

impl Epilogue {
    pub const NONE: Epilogue = Epilogue { act: Act::None, affine: None, act2: Act::None };
}

/// Dense convolution (groups = 1), zero padding `dilation * (kernel - 1) / 2`.
/// Weights packed `[ky][kx][ci][co padded to 8]`; bias `[co padded]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv {
    pub src: View,
    pub dst: View,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub weights: usize,
    pub bias: usize,
    pub epilogue: Epilogue,
}

/// F_loc and F_sur: two depthwise 3x3 convs of `src` (dilation 1 and
/// `dilation`) into channels `0..c` and `c..2c` of `dst`.
/// Weights packed `[ky][kx][c padded]` for each half; each half has its own bias vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthwisePair {
    pub src: View,
    pub dst: View,
    pub dilation: usize,
    pub loc_weights: usize,
    pub sur_weights: usize,
    pub loc_bias: usize,
    pub sur_bias: usize,
    /// Epilogue parameters cover all `2c` output channels.
    pub epilogue: Epilogue,
}

/// `AvgPool2d(3, stride 2, padding 1)`, padding counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool {
    pub src: View,
    pub dst: View,
    pub epilogue: Epilogue,
}

/// The first half of F_glo's global average, row-parallel: the channel sums
/// of each row `y` of `x` go to `sums + y * c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSums {
    pub x: View,
    pub sums: usize,
}

/// F_glo's squeeze: `scale = sigmoid(fc2(relu(fc1(mean(x)))))`, one value per
/// channel, from the row sums a [`ChannelSums`] step left at the start of
/// `scratch`. Scratch holds `h * c` row sums, `c` means, `hidden` units and the
/// `c` scales, which land at [`Squeeze::scale_offset`]; an [`Elementwise`] step with
/// `scale` then applies them (with the residual add) row-parallel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Squeeze {
    pub x: View,
    pub hidden: usize,
    /// `[hidden][c]`, `[hidden]`, `[c][hidden]`, `[c]`.
    pub fc1_weight: usize,
    pub fc1_bias: usize,
    pub fc2_weight: usize,
    pub fc2_bias: usize,
    pub scratch: usize,
}

impl Squeeze {
    /// Arena offset of the per-channel scales this step computes.
    pub const fn scale_offset(&self) -> usize {
        self.scratch + self.x.h * self.x.c + self.x.c + self.hidden
    }

    /// Floats of scratch the step uses.
    pub const fn scratch_len(&self) -> usize {
        self.x.h * self.x.c + 2 * self.x.c + self.hidden
    }
}

/// `dst = epilogue(src [* scale] [+ add])`: a tee, a concat part that is not
/// in place, an elementwise add (the local residual), or F_glo's channel
/// scale with the global residual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elementwise {
    pub src: View,
    /// Arena offset of per-channel multipliers (from a [`Squeeze`]).
    pub scale: Option<usize>,
    pub add: Option<View>,
    pub dst: View,
    pub epilogue: Epilogue,
}

/// Bilinear resize (align_corners = False, as PyTorch) of `src` to `dst`'s
/// size: the `scores` tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upsample {
    pub src: View,
    pub dst: View,
}

/// The same resize fused with an argmax over channels (the first channel with
/// the largest score): the `segment` tail. `dst` is a one-channel
/// [`Mem::Labels`] view; `src` has at most 256 channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpsampleArgmax {
    pub src: View,
    pub dst: View,
}

/// Largest channel count (in and out) of a [`Step::Winograd`] convolution:
/// its kernels keep one tile strip of transformed data on the stack.
pub const WINOGRAD_MAX_CHANNELS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Conv(Conv),
    /// A 3x3, stride-1, dilation-1 convolution computed as Winograd F(2x2, 3x3):
    /// 16 multiplies per 2x2 outputs and channel pair instead of 36. `weights`
    /// holds `U = G g G^T` packed `[16][ci][co padded to 8]`. Channels at most
    /// [`WINOGRAD_MAX_CHANNELS`].
    Winograd(Conv),
    DepthwisePair(DepthwisePair),
    AvgPool(AvgPool),
    ChannelSums(ChannelSums),
    Squeeze(Squeeze),
    Elementwise(Elementwise),
    Upsample(Upsample),
    UpsampleArgmax(UpsampleArgmax),
}

impl Step {
    /// Output rows, the unit in which a step is split across threads
    /// (`None`: the step runs on one thread).
    pub fn rows(&self) -> Option<usize> {
        match self {
            Step::Conv(s) | Step::Winograd(s) => Some(s.dst.h),
            Step::DepthwisePair(s) => Some(s.dst.h),
            Step::AvgPool(s) => Some(s.dst.h),
            Step::Elementwise(s) => Some(s.dst.h),
            Step::ChannelSums(s) => Some(s.x.h),
            Step::Squeeze(_) => None,
            Step::Upsample(s) => Some(s.dst.h),
            Step::UpsampleArgmax(s) => Some(s.dst.h),
        }
    }
}
