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
    /// The caller's picture, interleaved 8-bit RGB `[H, W, 3]`, one byte per
    /// element, read as `(byte - mean[c]) * inv_std[c]` (the model's
    /// [`Normalisation`]). Only convolutions and pools read it: the steps that
    /// read [`Mem::Input`] in a float program (see [`Step::reading_rgb8`]).
    Rgb8,
}

/// How an 8-bit RGB picture becomes the model's input: `(byte - mean[c]) *
/// inv_std[c]` per channel, computed in f32 exactly so by every path (the
/// float entry points' callers, `normalise_rgb8`, and the kernels reading a
/// [`Mem::Rgb8`] view), so that a picture gives bit-identical results through
/// the float and the 8-bit entry points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalisation {
    pub mean: [f32; 3],
    /// `1 / std`, rounded to f32 once.
    pub inv_std: [f32; 3],
}

impl Normalisation {
    /// From the mean and standard deviation per channel (RGB order).
    pub fn new(mean: [f32; 3], std: [f32; 3]) -> Self {
        Self { mean, inv_std: std.map(|s| 1.0 / s) }
    }

    /// Channel `c` (0, 1 or 2) of a pixel.
    #[inline(always)]
    pub fn apply(&self, c: usize, byte: u8) -> f32 {
        (f32::from(byte) - self.mean[c]) * self.inv_std[c]
    }
}

/// A strided 3-D window: element `(c, y, x)` is at
/// `offset + (y & row_mask) * row_stride + x * pixel_stride + c * channel_stride`
/// (in f32s).
///
/// `row_mask` is [`ALL_ROWS`] for a whole tensor. A *ring* holds only the last
/// `row_mask + 1` rows (a power of two) of a tensor that is produced and
/// consumed band by band (a streamed region, see `cgnet-codegen`'s `stream`):
/// row `y` lives in slot `y & row_mask`, so a band of new rows overwrites rows
/// that no step reads any more.
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
    pub row_mask: usize,
}

/// The [`View::row_mask`] of a whole tensor: every row has its own slot.
pub const ALL_ROWS: usize = usize::MAX;

impl View {
    /// Index of element `(c, y, x)`.
    #[inline(always)]
    pub fn at(&self, c: usize, y: usize, x: usize) -> usize {
        self.offset + (y & self.row_mask) * self.row_stride + x * self.pixel_stride + c * self.channel_stride
    }

    /// Rows the view holds at once: `h`, or a ring's slots when that is fewer.
    pub fn held_rows(&self) -> usize {
        self.h.min(self.row_mask.saturating_add(1))
    }

    /// Whether the view is a ring: it holds fewer rows than it has.
    pub fn is_ring(&self) -> bool {
        self.held_rows() < self.h
    }

    /// Whether `row_mask` is [`ALL_ROWS`] or one less than a power of two (so
    /// that `y & row_mask` is `y` modulo the ring's slots).
    pub fn row_mask_valid(&self) -> bool {
        self.row_mask == ALL_ROWS || (self.row_mask.wrapping_add(1)).is_power_of_two()
    }

    /// One past the last element addressed (`usize::MAX` when that overflows,
    /// so that such a view fails every bounds check).
    pub fn end(&self) -> usize {
        if self.c == 0 || self.h == 0 || self.w == 0 {
            return self.offset;
        }
        if !self.row_mask_valid() {
            return usize::MAX;
        }
        let term = |n: usize, stride: usize| (n - 1).checked_mul(stride);
        let last = [
            term(self.held_rows(), self.row_stride),
            term(self.w, self.pixel_stride),
            term(self.c, self.channel_stride),
        ]
        .into_iter()
        .try_fold(self.offset, |sum, t| sum.checked_add(t?));
        last.and_then(|l| l.checked_add(1)).unwrap_or(usize::MAX)
    }

    /// Whether distinct rows `y` address distinct elements (so threads that
    /// write different rows never write the same float): each row fits in its
    /// row stride, or rows nest inside channel planes (NCHW). For a ring, rows
    /// that are fewer than its slots apart (the callers check that a step
    /// writes at most that many rows of a ring at once).
    pub fn rows_disjoint(&self) -> bool {
        let span = |n: usize, stride: usize| n.saturating_sub(1).saturating_mul(stride);
        let pixels = span(self.w, self.pixel_stride);
        let rows = self.held_rows();
        rows <= 1
            || pixels.saturating_add(span(self.c, self.channel_stride)) < self.row_stride
            || (pixels < self.row_stride
                && (self.c <= 1 || rows.saturating_mul(self.row_stride) <= self.channel_stride))
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
            && self.row_stride.is_multiple_of(p)
            && other.row_stride.is_multiple_of(p);
        if same_grid {
            // Every element's index modulo the pixel stride is its channel slot.
            let (a, b) = (self.offset % p, other.offset % p);
            if a + self.c <= p && b + other.c <= p && (a + self.c <= b || b + other.c <= a) {
                return false;
            }
        }
        true
    }

    /// The same elements of an interleaved 8-bit picture: a view of the planar
    /// float input (`channel_stride` a multiple of `row_stride`, pixels
    /// adjacent) as the [`Mem::Rgb8`] view that addresses them in `[H, W, 3]`
    /// bytes. `None` for any other view.
    pub fn interleaved_rgb8(&self) -> Option<View> {
        let planar = self.mem == Mem::Input
            && self.pixel_stride == 1
            && self.row_stride >= self.w
            && self.channel_stride > 0
            && self.channel_stride.is_multiple_of(self.row_stride);
        if !planar {
            return None;
        }
        let (c0, in_plane) = (self.offset / self.channel_stride, self.offset % self.channel_stride);
        let (y0, x0) = (in_plane / self.row_stride, in_plane % self.row_stride);
        let row_stride = self.row_stride.checked_mul(3)?;
        let offset = y0.checked_mul(row_stride)?.checked_add(x0 * 3)?.checked_add(c0)?;
        (!self.is_ring()).then_some(View {
            mem: Mem::Rgb8,
            offset,
            row_stride,
            pixel_stride: 3,
            channel_stride: 1,
            ..*self
        })
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

/// How a step field is typed; every printed form of a step (C typedef, C
/// designated initializer, Rust literal) is generated from these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    View,
    Size,
    Epilogue,
    /// `Option<usize>`; in C `int has_NAME; size_t NAME;`.
    OptionalSize,
    /// `Option<View>`; in C `int has_NAME; cg_view NAME;`.
    OptionalView,
}

/// A step field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValue {
    View(View),
    Size(usize),
    Epilogue(Epilogue),
    OptionalSize(Option<usize>),
    OptionalView(Option<View>),
}

/// The one declaration of a step struct: its Rust name, its C type, and its
/// fields in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepSchema {
    pub name: &'static str,
    pub c_type: &'static str,
    pub fields: &'static [(&'static str, FieldKind)],
}

macro_rules! field_type {
    (View) => { View };
    (Size) => { usize };
    (Epilogue) => { Epilogue };
    (OptionalSize) => { Option<usize> };
    (OptionalView) => { Option<View> };
}

/// Declares each step struct once: the Rust struct, its [`StepSchema`] and
/// its field values in schema order.
macro_rules! step_structs {
    ($(
        $(#[$meta:meta])*
        struct $name:ident as $c_type:literal {
            $($(#[$field_meta:meta])* $field:ident: $kind:ident,)*
        }
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub struct $name {
                $($(#[$field_meta])* pub $field: field_type!($kind),)*
            }

            impl $name {
                pub const SCHEMA: StepSchema = StepSchema {
                    name: stringify!($name),
                    c_type: $c_type,
                    fields: &[$((stringify!($field), FieldKind::$kind)),*],
                };

                /// The fields' values, in schema order.
                pub fn values(&self) -> Vec<FieldValue> {
                    vec![$(FieldValue::$kind(self.$field)),*]
                }
            }
        )*

        /// Every step struct's schema.
        pub const STEP_SCHEMAS: &[StepSchema] = &[$($name::SCHEMA),*];
    };
}

step_structs! {
    /// Dense convolution (groups = 1), zero padding `dilation * (kernel - 1) / 2`.
    /// Weights packed `[ky][kx][ci][co padded to 8]`; bias `[co padded]`.
    /// With `add` (a tensor of `dst`'s shape), the sums start from it instead
    /// of the bias: one part of a convolution split over its input channels
    /// (`dst` may be `add` itself). Not for [`Step::Winograd`].
    struct Conv as "cg_conv" {
        src: View,
        dst: View,
        kernel: Size,
        stride: Size,
        dilation: Size,
        weights: Size,
        bias: Size,
        add: OptionalView,
        epilogue: Epilogue,
    }

    /// F_loc and F_sur: two depthwise 3x3 convs of `src` (dilation 1 and
    /// `dilation`) into channels `0..c` and `c..2c` of `dst`.
    /// Weights packed `[ky][kx][c padded]` for each half; each half has its own bias vector.
    struct DepthwisePair as "cg_dwpair" {
        src: View,
        dst: View,
        dilation: Size,
        loc_weights: Size,
        sur_weights: Size,
        loc_bias: Size,
        sur_bias: Size,
        /// Epilogue parameters cover all `2c` output channels.
        epilogue: Epilogue,
    }

    /// `AvgPool2d(3, stride 2, padding 1)`, padding counted. With `tee`, as
    /// [`Elementwise`]: `tee_epilogue(dst value)` stored there in the same pass.
    struct AvgPool as "cg_pool" {
        src: View,
        dst: View,
        epilogue: Epilogue,
        tee: OptionalView,
        tee_epilogue: Epilogue,
    }

    /// The first half of F_glo's global average, row-parallel: the channel sums
    /// of each row `y` of `x` go to `sums + y * c`.
    struct ChannelSums as "cg_sums" {
        x: View,
        sums: Size,
    }

    /// F_glo's squeeze: `scale = sigmoid(fc2(relu(fc1(mean(x)))))`, one value per
    /// channel, from the row sums a [`ChannelSums`] step left at the start of
    /// `scratch`. Scratch holds `h * c` row sums, `c` means, `hidden` units and the
    /// `c` scales, which land at [`Squeeze::scale_offset`]; an [`Elementwise`] step with
    /// `scale` then applies them (with the residual add) row-parallel.
    struct Squeeze as "cg_squeeze" {
        x: View,
        hidden: Size,
        /// `[hidden][c]`, `[hidden]`, `[c][hidden]`, `[c]`.
        fc1_weight: Size,
        fc1_bias: Size,
        fc2_weight: Size,
        fc2_bias: Size,
        scratch: Size,
    }

    /// `dst = epilogue(src [* scale] [+ add])`: a tee, a concat part that is not
    /// in place, an elementwise add (the local residual), F_glo's channel scale
    /// with the global residual, or the logits copied out (NHWC -> NCHW).
    /// With `tee`, the same pass also stores `tee_epilogue(dst value)` there
    /// (a down block's result, normalised into its concat slice).
    struct Elementwise as "cg_elementwise" {
        src: View,
        /// Arena offset of per-channel multipliers (from a [`Squeeze`]).
        scale: OptionalSize,
        add: OptionalView,
        dst: View,
        epilogue: Epilogue,
        /// A second destination of `dst`'s shape.
        tee: OptionalView,
        tee_epilogue: Epilogue,
    }

    /// Bilinear resize (align_corners = False, as PyTorch) of `src` to `dst`'s
    /// size: the `scores` tail.
    struct Upsample as "cg_upsample" {
        src: View,
        dst: View,
    }

    /// The same resize fused with an argmax over channels (the first channel with
    /// the largest score): the `segment` tail. `dst` is a one-channel
    /// [`Mem::Labels`] view; `src` has at most 256 channels.
    struct UpsampleArgmax as "cg_argmax" {
        src: View,
        dst: View,
    }
}

impl Elementwise {
    /// `dst = epilogue(src)`: a copy with no scale, addend or tee.
    pub const fn copy(src: View, dst: View, epilogue: Epilogue) -> Self {
        Self { src, scale: None, add: None, dst, epilogue, tee: None, tee_epilogue: Epilogue::NONE }
    }
}

impl AvgPool {
    /// The pool with no tee.
    pub const fn new(src: View, dst: View, epilogue: Epilogue) -> Self {
        Self { src, dst, epilogue, tee: None, tee_epilogue: Epilogue::NONE }
    }
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

/// Largest channel count (in and out) of a [`Step::Winograd`] convolution:
/// its kernels keep one tile strip of transformed data on the stack.
pub const WINOGRAD_MAX_CHANNELS: usize = 64;

/// Output rows and columns of one Winograd tile (F(4x4, 3x3)).
pub const WINOGRAD_TILE: usize = 4;

/// Transformed positions of one tile: its (4 + 2) x (4 + 2) input window.
pub const WINOGRAD_POSITIONS: usize = 36;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Conv(Conv),
    /// A 3x3, stride-1, dilation-1 convolution computed as Winograd F(4x4, 3x3):
    /// 36 multiplies per 4x4 outputs and channel pair instead of 144. `weights`
    /// holds `U = G g G^T` packed `[36][ci][co padded to 8]`. Tiles start at
    /// rows that are multiples of [`WINOGRAD_TILE`]. Channels at most
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
    /// The step as it runs on an 8-bit picture ([`Mem::Rgb8`]) instead of the
    /// float input: `Some` for the steps that read [`Mem::Input`] (the first
    /// convolution and the input-injection pools), with those views mapped by
    /// [`View::interleaved_rgb8`]; `None` for every other step, which runs
    /// unchanged. Only convolutions and pools can read a picture.
    pub fn reading_rgb8(&self) -> Option<Step> {
        let map = |v: &View| if v.mem == Mem::Input { v.interleaved_rgb8() } else { Some(*v) };
        match self {
            Step::Conv(s) if s.src.mem == Mem::Input => Some(Step::Conv(Conv { src: map(&s.src)?, ..*s })),
            Step::AvgPool(s) if s.src.mem == Mem::Input => Some(Step::AvgPool(AvgPool { src: map(&s.src)?, ..*s })),
            _ => None,
        }
    }

    /// The step as it runs when the model's input is an 8-bit picture: its
    /// [`Step::reading_rgb8`] form, or the step itself when it does not read the input.
    pub fn picture_form(&self) -> Step {
        self.reading_rgb8().unwrap_or(*self)
    }

    /// The step's tee and its epilogue, for the kinds that can store one
    /// (elementwise steps and pools); `None` for the others.
    pub fn tee_mut(&mut self) -> Option<(&mut Option<View>, &mut Epilogue)> {
        match self {
            Step::Elementwise(s) => Some((&mut s.tee, &mut s.tee_epilogue)),
            Step::AvgPool(s) => Some((&mut s.tee, &mut s.tee_epilogue)),
            _ => None,
        }
    }

    /// The step's tee, if it stores one.
    pub fn tee(&self) -> Option<View> {
        match self {
            Step::Elementwise(s) => s.tee,
            Step::AvgPool(s) => s.tee,
            _ => None,
        }
    }

    /// The variant's name, its C kind constant, its struct's schema and the
    /// field values: what every printed form of the step is made from.
    pub fn parts(&self) -> (&'static str, &'static str, StepSchema, Vec<FieldValue>) {
        match self {
            Step::Conv(s) => ("Conv", "CG_CONV", Conv::SCHEMA, s.values()),
            Step::Winograd(s) => ("Winograd", "CG_WINOGRAD", Conv::SCHEMA, s.values()),
            Step::DepthwisePair(s) => ("DepthwisePair", "CG_DWPAIR", DepthwisePair::SCHEMA, s.values()),
            Step::AvgPool(s) => ("AvgPool", "CG_POOL", AvgPool::SCHEMA, s.values()),
            Step::ChannelSums(s) => ("ChannelSums", "CG_SUMS", ChannelSums::SCHEMA, s.values()),
            Step::Squeeze(s) => ("Squeeze", "CG_SQUEEZE", Squeeze::SCHEMA, s.values()),
            Step::Elementwise(s) => ("Elementwise", "CG_ELEMENTWISE", Elementwise::SCHEMA, s.values()),
            Step::Upsample(s) => ("Upsample", "CG_UPSAMPLE", Upsample::SCHEMA, s.values()),
            Step::UpsampleArgmax(s) => ("UpsampleArgmax", "CG_ARGMAX", UpsampleArgmax::SCHEMA, s.values()),
        }
    }

    /// Multiply-adds of the step's arithmetic: a convolution's (a Winograd step
    /// counts the direct convolution it computes, as FLOP rates are quoted), the
    /// depthwise pair's; 0 for the steps that mostly move data (pools, copies,
    /// sums, the squeeze, the tails).
    pub fn macs(&self) -> u64 {
        let n = |factors: &[usize]| factors.iter().fold(1u64, |p, f| p.saturating_mul(*f as u64));
        match self {
            Step::Conv(s) | Step::Winograd(s) => n(&[s.dst.h, s.dst.w, s.dst.c, s.src.c, s.kernel, s.kernel]),
            Step::DepthwisePair(s) => n(&[s.dst.h, s.dst.w, s.dst.c, 9]),
            _ => 0,
        }
    }

    /// The step's kind for a profile: the variant, with a convolution's kernel
    /// size and stride (`Conv 3x3/2`, `Winograd 3x3/1`, `Conv 1x1/1`).
    pub fn kind(&self) -> String {
        match self {
            Step::Conv(s) | Step::Winograd(s) => {
                format!("{} {}x{}/{}", self.parts().0, s.kernel, s.kernel, s.stride)
            }
            _ => self.parts().0.to_string(),
        }
    }

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

    /// Rows per chunk when the step is split across threads: [`group_chunk_rows`]
    /// of the step alone.
    pub fn chunk_rows(&self) -> usize {
        group_chunk_rows(std::slice::from_ref(self))
    }

    /// Chunks the step is cut into: `rows().div_ceil(chunk_rows())`.
    pub fn chunks(&self) -> usize {
        self.rows().unwrap_or(1).max(1).div_ceil(self.chunk_rows())
    }

    /// Whether output row `y` reads only row `y` of every view the step reads
    /// (elementwise steps, channel sums, 1x1 stride-1 convolutions), so that it
    /// can follow the step writing those rows chunk by chunk in a group
    /// (`kernels::check_group`).
    pub fn row_local(&self) -> bool {
        match self {
            Step::Conv(s) => s.kernel == 1 && s.stride == 1,
            Step::Elementwise(_) | Step::ChannelSums(_) => true,
            _ => false,
        }
    }

    /// Rough operations (multiply-adds, or floats moved) per output row.
    fn work_per_row(&self) -> usize {
        let plane = |v: &View| v.w.saturating_mul(v.c);
        match self {
            Step::Conv(s) => plane(&s.dst).saturating_mul(s.src.c.saturating_mul(s.kernel * s.kernel)),
            // F(4x4, 3x3): 36 instead of 144 multiplies per 16 outputs, plus the transforms.
            Step::Winograd(s) => plane(&s.dst).saturating_mul(s.src.c.saturating_mul(4)),
            Step::DepthwisePair(s) => plane(&s.dst).saturating_mul(9),
            Step::AvgPool(s) => plane(&s.dst).saturating_mul(9),
            Step::Elementwise(s) => plane(&s.dst).saturating_mul(2),
            Step::ChannelSums(s) => plane(&s.x),
            Step::Squeeze(_) => 0,
            Step::Upsample(s) => plane(&s.dst).saturating_mul(4),
            Step::UpsampleArgmax(s) => s.dst.w.saturating_mul(s.src.c).saturating_mul(4),
        }
    }
}

/// Rows per chunk when a step, or a group of steps that run chunk by chunk
/// (each chunk's rows through every step of the group, see
/// `kernels::Exec::steps`), is split across threads: enough rows for about
/// [`CHUNK_WORK`] operations of the whole group (so a hand-off pays for itself,
/// and tiny steps stay whole on one thread), a multiple of the rows a kernel
/// computes together (Winograd's two-row tiles), and at most the group's
/// [`Step::rows`]. The same for every thread count; chunks are claimed
/// dynamically, and every output element is computed by the same code whatever
/// the chunking.
pub fn group_chunk_rows(group: &[Step]) -> usize {
    let rows = group.iter().map(|s| s.rows().unwrap_or(1)).max().unwrap_or(1).max(1);
    band_chunk_rows(group, rows)
}

/// Rows per chunk when `rows` consecutive output rows of a group (a band of a
/// streamed region, or all of them: [`group_chunk_rows`]) are split across
/// threads; the same rule, over those rows.
pub fn band_chunk_rows(group: &[Step], rows: usize) -> usize {
    let rows = rows.max(1);
    let granule = if group.iter().any(|s| matches!(s, Step::Winograd(_))) { WINOGRAD_TILE } else { 1 };
    let per_row = group.iter().map(|s| s.work_per_row()).fold(0usize, usize::saturating_add).max(1);
    // Enough rows for the work, and few enough chunks that each thread's rows
    // stay mostly contiguous (what it reads was mostly written by itself).
    let chunk = CHUNK_WORK.div_ceil(per_row).max(rows.div_ceil(MAX_CHUNKS)).next_multiple_of(granule);
    chunk.min(rows)
}

/// Most steps in a group that runs chunk by chunk (the compiler's groups; a
/// runner can map a group into a stack array of this size).
pub const MAX_GROUP: usize = 4;

/// Operations (see [`group_chunk_rows`]) worth one chunk of a step: a few
/// microseconds of work, well above the cost of claiming it.
pub const CHUNK_WORK: usize = 1 << 16;

/// Most chunks a step is cut into: plenty to balance 8 threads.
pub const MAX_CHUNKS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn nhwc(c: usize, h: usize, w: usize) -> View {
        View {
            mem: Mem::Arena,
            offset: 0,
            c,
            h,
            w,
            row_stride: w * c,
            pixel_stride: c,
            channel_stride: 1,
            row_mask: ALL_ROWS,
        }
    }

    fn conv(ci: usize, co: usize, h: usize, w: usize) -> Conv {
        Conv {
            src: nhwc(ci, h, w),
            dst: nhwc(co, h, w),
            kernel: 3,
            stride: 1,
            dilation: 1,
            weights: 0,
            bias: 0,
            add: None,
            epilogue: Epilogue::NONE,
        }
    }

    #[test]
    fn chunks_cover_the_rows_and_keep_winograd_tiles_whole() {
        for (ci, co, h, w) in [(32, 32, 256, 512), (3, 32, 33, 65), (8, 8, 7, 9), (64, 64, 1, 1), (32, 32, 5, 2048)] {
            for step in [Step::Conv(conv(ci, co, h, w)), Step::Winograd(conv(ci, co, h, w))] {
                let (chunk, chunks) = (step.chunk_rows(), step.chunks());
                assert!(chunk >= 1 && chunk <= h, "{step:?}");
                assert!(chunks * chunk >= h && (chunks - 1) * chunk < h, "{step:?}");
                if matches!(step, Step::Winograd(_)) && chunks > 1 {
                    assert_eq!(chunk % 2, 0, "a chunk boundary would split a two-row tile");
                }
            }
        }
        // A big convolution is cut into the most chunks; a tiny step stays whole.
        assert_eq!(Step::Conv(conv(32, 32, 256, 512)).chunks(), MAX_CHUNKS);
        assert_eq!(Step::Conv(conv(32, 32, 24, 512)).chunk_rows(), 1);
        assert_eq!(Step::Conv(conv(8, 8, 7, 9)).chunks(), 1);
    }
}
