//! The GPU backend: one WGSL compute kernel per step of the same
//! [`CompiledModel`] the CPU backends run, over the same arena plan (offsets,
//! strides and sizes are baked into each kernel as constants), plus one per tail.
//!
//! Kernels are written for GPUs rather than transliterated from the CPU loops:
//! one invocation per output element (convolutions: per pixel and four output
//! channels, accumulated as a `vec4`), Winograd tiles computed whole by one
//! invocation, F_glo's squeeze as a single workgroup with barriers, and the
//! argmax packing four labels into each `u32` so that `segment` reads back
//! only bytes.

use cgnet_runtime::gpu::{GpuKernel, GpuPlan, BINDINGS, MAX_WORKGROUPS_PER_DIMENSION, WORKGROUP_SIZE};
use cgnet_runtime::program::{
    Act, AvgPool, ChannelSums, Conv, DepthwisePair, Elementwise, Epilogue, Mem, Normalisation, Squeeze, Step, Upsample,
    UpsampleArgmax, View,
};

use super::CompiledModel;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WgslError {
    #[error("{0} does not fit the GPU's 32-bit indices")]
    TooLarge(String),
    #[error("the labels must be a dense row-major view for the GPU target (four per word)")]
    SparseLabels,
    #[error("the program streams regions band by band (a CPU schedule); compile it for the GPU with `Streaming::Off`")]
    Streamed,
}

/// The whole program as WGSL kernels.
pub fn plan(model: &CompiledModel) -> Result<GpuPlan, WgslError> {
    // A dispatch runs a whole step: rings and bands are the CPU's.
    if model.is_streamed() {
        return Err(WgslError::Streamed);
    }
    let arena_floats = model.arena_bytes.div_ceil(4);
    let pixels = model.height * model.width;
    for (what, floats) in
        [("the arena", arena_floats), ("the weights", model.weights.len()), ("the scores", pixels * model.classes)]
    {
        if u32::try_from(floats).is_err() {
            return Err(WgslError::TooLarge(what.into()));
        }
    }
    let body = model
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| kernel(&format!("step {i} {}", step.parts().0), step))
        .collect::<Result<_, _>>()?;
    // The readers of the input again, reading an 8-bit picture instead.
    let normalisation = model.normalisation();
    let picture = model
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| Some((i, step.reading_rgb8()?)))
        .map(|(i, step)| {
            let label = format!("step {i} {} (8-bit picture)", step.parts().0);
            Ok((i, kernel_reading(&label, &step, Some(&normalisation))?))
        })
        .collect::<Result<_, _>>()?;
    let t = &model.tails;
    Ok(GpuPlan {
        body,
        picture,
        run: kernel("tail run", &t.run)?,
        scores: kernel("tail scores", &t.scores)?,
        segment: kernel("tail segment", &t.segment)?,
        arena_floats,
        input_floats: 3 * pixels,
        logits_floats: model.classes * model.logits.h * model.logits.w,
        scores_floats: model.classes * pixels,
        labels: pixels,
    })
}

/// The kernel of one step.
pub fn kernel(label: &str, step: &Step) -> Result<GpuKernel, WgslError> {
    kernel_reading(label, step, None)
}

/// The kernel of one step; a step that reads an 8-bit picture ([`Mem::Rgb8`])
/// gets `picture`, how to normalise it.
fn kernel_reading(label: &str, step: &Step, picture: Option<&Normalisation>) -> Result<GpuKernel, WgslError> {
    let (((body, invocations), channel_groups), helpers) = match step {
        Step::Conv(s) => (conv(s), String::new()),
        Step::Winograd(s) => (winograd(s), String::new()),
        Step::DepthwisePair(s) => ((depthwise_pair(s), 1), String::new()),
        Step::AvgPool(s) => ((avg_pool(s), 1), tee_function(s.tee, &s.tee_epilogue)),
        Step::Elementwise(s) => ((elementwise(s), 1), tee_function(s.tee, &s.tee_epilogue)),
        Step::ChannelSums(s) => ((channel_sums(s), 1), String::new()),
        Step::Squeeze(s) => {
            let wgsl = format!("{}{}", prelude(None, None), squeeze(s));
            return Ok(GpuKernel { label: label.into(), wgsl, workgroups: [1, 1, 1] });
        }
        Step::Upsample(s) => ((upsample(s), 1), score_function(&s.src, s.dst.h, s.dst.w)),
        Step::UpsampleArgmax(s) => ((upsample_argmax(s)?, 1), score_function(&s.src, s.dst.h, s.dst.w)),
    };
    let too_large = || WgslError::TooLarge(format!("{label}'s invocation count"));
    let n = u32::try_from(invocations).map_err(|_| too_large())?;
    let channel_groups = u32::try_from(channel_groups).map_err(|_| too_large())?;
    let blocks = n.div_ceil(WORKGROUP_SIZE).max(1);
    let x = blocks.min(MAX_WORKGROUPS_PER_DIMENSION);
    let z = blocks.div_ceil(x);
    if channel_groups > MAX_WORKGROUPS_PER_DIMENSION || z > MAX_WORKGROUPS_PER_DIMENSION {
        return Err(too_large());
    }
    let epilogue = match step {
        Step::Conv(s) | Step::Winograd(s) => Some(s.epilogue),
        Step::DepthwisePair(s) => Some(s.epilogue),
        Step::AvgPool(s) => Some(s.epilogue),
        Step::Elementwise(s) => Some(s.epilogue),
        _ => None,
    };
    // `g` (a convolution's group of output channels) comes from the workgroup,
    // so it is uniform: the weights a workgroup reads are the same for all its
    // invocations (one load, broadcast), and `i` numbers the invocations of
    // that group along x (then z, past 65,535 workgroups).
    let wgsl = format!(
        "{}{helpers}@compute @workgroup_size({WORKGROUP_SIZE})\n\
         fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {{\n\
         \x20   let g = wg.y;\n\
         \x20   let i = (wg.x + wg.z * {x}u) * {WORKGROUP_SIZE}u + li;\n\
         \x20   if (i >= {n}u) {{ return; }}\n{body}}}\n",
        prelude(epilogue.as_ref(), picture),
    );
    Ok(GpuKernel { label: label.into(), wgsl, workgroups: [x, channel_groups, z] })
}

/// The bindings, the step's epilogue as `fn epilogue(c, x)`, and for a step
/// reading an 8-bit picture, `fn picture(i, c)`.
fn prelude(epilogue: Option<&Epilogue>, picture: Option<&Normalisation>) -> String {
    let mut s = String::new();
    for (i, (name, access)) in BINDINGS.iter().enumerate() {
        let ty = match *name {
            "labels" => "u32",
            // The picture's bytes, uploaded into the input buffer.
            "input" if picture.is_some() => "u32",
            "weights4" => "vec4<f32>",
            _ => "f32",
        };
        s += &format!("@group(0) @binding({i}) var<storage, {access}> {name}: array<{ty}>;\n");
    }
    if let Some(n) = picture {
        // Exact f32 constants, and the CPU kernels' arithmetic: `(byte - mean) * inv_std`.
        let f = |v: f32| format!("bitcast<f32>({:#010x}u)", v.to_bits());
        let per_channel =
            |v: [f32; 3]| format!("select(select({}, {}, c == 1u), {}, c == 2u)", f(v[0]), f(v[1]), f(v[2]));
        s += &format!(
            "\n// Byte i of the caller's 8-bit picture (four per little-endian word), channel c, normalised.\n\
             fn picture(i: u32, c: u32) -> f32 {{\n\
             \x20   let byte = f32((input[i / 4u] >> (8u * (i % 4u))) & 255u);\n\
             \x20   return (byte - {}) * {};\n}}\n",
            per_channel(n.mean),
            per_channel(n.inv_std)
        );
    }
    if let Some(e) = epilogue {
        s += &epilogue_function("epilogue", e);
    }
    s + "\n"
}

/// `fn tee_epilogue(c, x)` for a step with a tee; nothing without one.
fn tee_function(tee: Option<View>, e: &Epilogue) -> String {
    tee.map(|_| epilogue_function("tee_epilogue", e).trim_start().to_owned() + "\n").unwrap_or_default()
}

/// The statement storing `tee_epilogue(c, VALUE)` at `(c, y, x)` of the tee, if any.
fn tee_store(tee: Option<View>, value: &str, y: &str, x: &str) -> String {
    tee.map(|t| format!("    {}[{}] = tee_epilogue(c, {value});\n", mem(t.mem), at(&t, "c", y, x))).unwrap_or_default()
}

/// `fn NAME(c, x)`: the epilogue `e` applied to `x` in channel `c`.
fn epilogue_function(name: &str, e: &Epilogue) -> String {
    let act = |a: Act| match a {
        Act::None => String::new(),
        Act::Relu => "    v = max(v, 0.0);\n".into(),
        Act::Prelu(o) => format!("    v = select(v, v * weights[{o}u + c], v < 0.0);\n"),
    };
    let affine = e
        .affine
        .map(|(scale, shift)| format!("    v = v * weights[{scale}u + c] + weights[{shift}u + c];\n"))
        .unwrap_or_default();
    format!(
        "\nfn {name}(c: u32, x: f32) -> f32 {{\n    var v = x;\n{}{affine}{}    return v;\n}}\n",
        act(e.act),
        act(e.act2)
    )
}

fn mem(m: Mem) -> &'static str {
    match m {
        Mem::Arena => "arena",
        Mem::Input => "input",
        Mem::Logits => "logits",
        Mem::Scores => "scores",
        Mem::Labels => "labels",
        // The picture's bytes lie in the input buffer, which a kernel reading
        // them declares as words (see `picture_function`).
        Mem::Rgb8 => "input",
    }
}

/// The index expression of element `(c, y, x)` of `v` (expressions in WGSL, `u32`).
fn at(v: &View, c: &str, y: &str, x: &str) -> String {
    format!("{}u + ({c}) * {}u + ({y}) * {}u + ({x}) * {}u", v.offset, v.channel_stride, v.row_stride, v.pixel_stride)
}

fn load(v: &View, c: &str, y: &str, x: &str) -> String {
    element(v, &at(v, c, y, x), c)
}

/// The element at `index` (in channel `c`) of `v`'s memory: a picture's byte is normalised.
fn element(v: &View, index: &str, c: &str) -> String {
    if v.mem == Mem::Rgb8 {
        format!("picture({index}, {c})")
    } else {
        format!("{}[{index}]", mem(v.mem))
    }
}

/// `let (c, x, y) = ...` from the invocation index, channels fastest.
fn split(c: usize, w: usize, names: [&str; 3]) -> String {
    let [c_name, x_name, y_name] = names;
    format!(
        "    let {c_name} = i % {c}u;\n    let {x_name} = (i / {c}u) % {w}u;\n    let {y_name} = i / ({c}u * {w}u);\n"
    )
}

/// Output pixels per convolution invocation (along the row).
const CONV_PIXELS: usize = 4;

/// Four weights from `base` (an index expression) as a `vec4`: one 16-byte
/// load from the `weights4` view of the buffer when `base` is a multiple of 4.
fn weight_vec4(base: &str, aligned: bool) -> String {
    if aligned {
        format!("weights4[({base}) / 4u]")
    } else {
        format!("vec4<f32>(weights[{base}], weights[{base} + 1u], weights[{base} + 2u], weights[{base} + 3u])")
    }
}

/// A register tile per invocation: [`CONV_PIXELS`] pixels of a row times 8
/// output channels (two `vec4`s), so each input value loaded feeds 8 FMAs and
/// each weight vector 4. Neighbouring invocations take neighbouring pixel
/// groups of the same channels: they read the same weights.
fn conv(s: &Conv) -> ((String, usize), usize) {
    let groups = s.dst.c.div_ceil(8);
    let co_pad = s.dst.c.next_multiple_of(8);
    let pad = s.dilation * (s.kernel - 1) / 2;
    let xgroups = s.dst.w.div_ceil(CONV_PIXELS);
    let aligned = s.weights.is_multiple_of(4) && s.bias.is_multiple_of(4);
    let w4 = |base: &str| weight_vec4(base, aligned);
    // Unrolled over the pixels: every accumulator and address stays in a register.
    let pixels = 0..CONV_PIXELS;
    let init: String = match &s.add {
        None => pixels.clone().map(|p| format!("    var a{p}0 = b0;\n    var a{p}1 = b1;\n")).collect(),
        // One part of a split convolution: the sums start from the parts so far.
        Some(add) => pixels
            .clone()
            .map(|p| {
                format!(
                    "    var a{p}0 = vec4<f32>(0.0);\n\
                     \x20   var a{p}1 = vec4<f32>(0.0);\n\
                     \x20   if (xg * {P}u + {p}u < {dw}u) {{\n\
                     \x20       let ox = xg * {P}u + {p}u;\n\
                     \x20       for (var j = 0u; j < 8u; j++) {{\n\
                     \x20           let c = g * 8u + j;\n\
                     \x20           if (c < {co}u) {{\n\
                     \x20               let v = {mem}[{at}];\n\
                     \x20               if (j < 4u) {{ a{p}0[j] = v; }} else {{ a{p}1[j - 4u] = v; }}\n\
                     \x20           }}\n\
                     \x20       }}\n\
                     \x20   }}\n",
                    P = CONV_PIXELS,
                    dw = s.dst.w,
                    co = s.dst.c,
                    mem = mem(add.mem),
                    at = at(add, "c", "oy", "ox"),
                )
            })
            .collect(),
    };
    let taps: String = pixels
        .clone()
        .map(|p| {
            format!(
                "            let ix{p} = i32((xg * {P}u + {p}u) * {stride}u + kx * {dil}u) - {pad};\n\
                 \x20           let keep{p} = select(0.0, 1.0, ix{p} >= 0 && ix{p} < {w} && xg * {P}u + {p}u < {dw}u);\n\
                 \x20           let base{p} = {src};\n",
                P = CONV_PIXELS,
                stride = s.stride,
                dil = s.dilation,
                w = s.src.w,
                dw = s.dst.w,
                src = at(&s.src, "0u", "u32(iy)", &format!("u32(clamp(ix{p}, 0, {}))", s.src.w - 1)),
            )
        })
        .collect();
    let fmas: String = pixels
        .clone()
        .map(|p| {
            format!(
                "                let x{p} = {x} * keep{p};\n\
                 \x20               a{p}0 += x{p} * w0;\n\
                 \x20               a{p}1 += x{p} * w1;\n",
                x = element(&s.src, &format!("base{p} + c * {}u", s.src.channel_stride), "c"),
            )
        })
        .collect();
    let stores: String = pixels
        .map(|p| {
            format!(
                "    if (xg * {P}u + {p}u < {dw}u) {{\n\
                 \x20       let ox = xg * {P}u + {p}u;\n\
                 \x20       for (var j = 0u; j < 8u; j++) {{\n\
                 \x20           let c = g * 8u + j;\n\
                 \x20           let v = select(a{p}1[j % 4u], a{p}0[j % 4u], j < 4u);\n\
                 \x20           if (c < {co}u) {{ {dst}[{at}] = epilogue(c, v); }}\n\
                 \x20       }}\n\
                 \x20   }}\n",
                P = CONV_PIXELS,
                dw = s.dst.w,
                co = s.dst.c,
                dst = mem(s.dst.mem),
                at = at(&s.dst, "c", "oy", "ox"),
            )
        })
        .collect();
    let body = format!(
        "    let xg = i % {xgroups}u;\n\
         \x20   let oy = i / {xgroups}u;\n\
         \x20   let b0 = {bias0};\n\
         \x20   let b1 = {bias1};\n\
         {init}\
         \x20   for (var ky = 0u; ky < {k}u; ky++) {{\n\
         \x20       let iy = i32(oy * {stride}u + ky * {dil}u) - {pad};\n\
         \x20       if (iy < 0 || iy >= {h}) {{ continue; }}\n\
         \x20       for (var kx = 0u; kx < {k}u; kx++) {{\n\
         \x20           // Each pixel's first input channel (a valid address), and 0 for padding.\n\
         {taps}\
         \x20           let tap = {weights}u + (ky * {k}u + kx) * {tap}u + g * 8u;\n\
         \x20           for (var c = 0u; c < {ci}u; c++) {{\n\
         \x20               let wc = tap + c * {co_pad}u;\n\
         \x20               let w0 = {w0};\n\
         \x20               let w1 = {w1};\n\
         {fmas}\
         \x20           }}\n\
         \x20       }}\n\
         \x20   }}\n\
         {stores}",
        bias0 = w4(&format!("{}u + g * 8u", s.bias)),
        bias1 = w4(&format!("{}u + g * 8u + 4u", s.bias)),
        k = s.kernel,
        stride = s.stride,
        dil = s.dilation,
        h = s.src.h,
        weights = s.weights,
        tap = s.src.c * co_pad,
        ci = s.src.c,
        w0 = w4("wc"),
        w1 = w4("wc + 4u"),
    );
    ((body, xgroups * s.dst.h), groups)
}

/// `B^T` of Winograd F(4x4, 3x3) (rows), as in the CPU kernels.
const WINOGRAD_BT: [[f32; 6]; 6] = [
    [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
    [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
    [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
    [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
];

/// `A^T` of Winograd F(4x4, 3x3).
const WINOGRAD_AT: [[f32; 6]; 4] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
    [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
    [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
];

/// `sum_k row[k] * x(k)` as a WGSL expression, zero terms left out.
fn linear(row: &[f32], x: impl Fn(usize) -> String) -> String {
    let mut out = String::new();
    for (k, &coef) in row.iter().enumerate().filter(|(_, c)| **c != 0.0) {
        let term = if coef.abs() == 1.0 { x(k) } else { format!("{:?} * {}", coef.abs(), x(k)) };
        let sign = if coef < 0.0 {
            "-"
        } else if out.is_empty() {
            ""
        } else {
            "+"
        };
        out = if out.is_empty() { format!("{sign}{term}") } else { format!("{out} {sign} {term}") };
    }
    out
}

/// Winograd F(4x4, 3x3), one 4x4 tile x 4 output channels per invocation: the
/// 6x6 input tile of each input channel transformed (`B^T d B`), multiplied
/// with the packed `U` (`[36][ci][co padded]`) into 36 accumulators, then
/// `A^T M A`.
fn winograd(s: &Conv) -> ((String, usize), usize) {
    let aligned = s.weights.is_multiple_of(4) && s.bias.is_multiple_of(4);
    let groups = s.dst.c.div_ceil(4);
    let co_pad = s.dst.c.next_multiple_of(8);
    let (tiles_x, tiles_y) = (s.dst.w.div_ceil(4), s.dst.h.div_ceil(4));
    let join = |items: Vec<String>| items.join(", ");
    // Columns of B^T d: t[k * 6 + q] from d[. * 6 + q]; rows of (B^T d) B from t[r * 6 + .].
    let columns: String = (0..6)
        .map(|k| {
            format!("            t[{k}u * 6u + q] = {};\n", linear(&WINOGRAD_BT[k], |j| format!("d[{j}u * 6u + q]")))
        })
        .collect();
    let row = join((0..6).map(|k| linear(&WINOGRAD_BT[k], |j| format!("t[r * 6u + {j}u]"))).collect());
    let out_columns: String = (0..4)
        .map(|k| format!("        o[{k}u * 6u + q] = {};\n", linear(&WINOGRAD_AT[k], |j| format!("m[{j}u * 6u + q]"))))
        .collect();
    let out_row = join((0..4).map(|k| linear(&WINOGRAD_AT[k], |j| format!("o[r * 6u + {j}u]"))).collect());
    let body = format!(
        "    let tx = i % {tiles_x}u;\n\
         \x20   let ty = i / {tiles_x}u;\n\
         \x20   var m: array<vec4<f32>, 36>;\n\
         \x20   for (var c = 0u; c < {ci}u; c++) {{\n\
         \x20       var d: array<f32, 36>;\n\
         \x20       for (var r = 0u; r < 6u; r++) {{\n\
         \x20           for (var q = 0u; q < 6u; q++) {{\n\
         \x20               let iy = i32(ty * 4u + r) - 1;\n\
         \x20               let ix = i32(tx * 4u + q) - 1;\n\
         \x20               if (iy >= 0 && iy < {h} && ix >= 0 && ix < {w}) {{ d[r * 6u + q] = {load}; }}\n\
         \x20           }}\n\
         \x20       }}\n\
         \x20       // B^T d (columns), then (B^T d) B (rows).\n\
         \x20       var t: array<f32, 36>;\n\
         \x20       for (var q = 0u; q < 6u; q++) {{\n\
         {columns}\
         \x20       }}\n\
         \x20       for (var r = 0u; r < 6u; r++) {{\n\
         \x20           let v = array<f32, 6>({row});\n\
         \x20           for (var q = 0u; q < 6u; q++) {{\n\
         \x20               let u = {weights}u + (r * 6u + q) * {plane}u + c * {co_pad}u + g * 4u;\n\
         \x20               m[r * 6u + q] += v[q] * {u4};\n\
         \x20           }}\n\
         \x20       }}\n\
         \x20   }}\n\
         \x20   // A^T m (columns), then (A^T m) A (rows).\n\
         \x20   var o: array<vec4<f32>, 24>;\n\
         \x20   for (var q = 0u; q < 6u; q++) {{\n\
         {out_columns}\
         \x20   }}\n\
         \x20   let b = {bias};\n\
         \x20   for (var r = 0u; r < 4u; r++) {{\n\
         \x20       let y = array<vec4<f32>, 4>({out_row});\n\
         \x20       for (var q = 0u; q < 4u; q++) {{\n\
         \x20           let oy = ty * 4u + r;\n\
         \x20           let ox = tx * 4u + q;\n\
         \x20           if (oy >= {dh}u || ox >= {dw}u) {{ continue; }}\n\
         \x20           for (var j = 0u; j < 4u; j++) {{\n\
         \x20               let c = g * 4u + j;\n\
         \x20               if (c < {co}u) {{ {dst}[{at}] = epilogue(c, y[q][j] + b[j]); }}\n\
         \x20           }}\n\
         \x20       }}\n\
         \x20   }}\n",
        ci = s.src.c,
        h = s.src.h,
        w = s.src.w,
        load = load(&s.src, "c", "u32(iy)", "u32(ix)"),
        weights = s.weights,
        plane = s.src.c * co_pad,
        u4 = weight_vec4("u", aligned),
        bias = weight_vec4(&format!("{}u + g * 4u", s.bias), aligned),
        dh = s.dst.h,
        dw = s.dst.w,
        co = s.dst.c,
        dst = mem(s.dst.mem),
        at = at(&s.dst, "c", "oy", "ox"),
    );
    ((body, tiles_x * tiles_y), groups)
}

/// F_loc and F_sur in one pass: output channel `ch < 2c` is half `ch / c`.
fn depthwise_pair(s: &DepthwisePair) -> (String, usize) {
    let c = s.src.c;
    let c_pad = c.next_multiple_of(8) + 8;
    let body = format!(
        "{split}\
         \x20   let sur = ch >= {c}u;\n\
         \x20   let cc = ch % {c}u;\n\
         \x20   let dil = select(1, {dil}, sur);\n\
         \x20   let taps = select({loc_w}u, {sur_w}u, sur) + cc;\n\
         \x20   var acc = weights[select({loc_b}u, {sur_b}u, sur) + cc];\n\
         \x20   for (var ky = 0; ky < 3; ky++) {{\n\
         \x20       let iy = i32(oy) + (ky - 1) * dil;\n\
         \x20       if (iy < 0 || iy >= {h}) {{ continue; }}\n\
         \x20       for (var kx = 0; kx < 3; kx++) {{\n\
         \x20           let ix = i32(ox) + (kx - 1) * dil;\n\
         \x20           if (ix < 0 || ix >= {w}) {{ continue; }}\n\
         \x20           acc += {load} * weights[taps + u32(ky * 3 + kx) * {c_pad}u];\n\
         \x20       }}\n\
         \x20   }}\n\
         \x20   {dst}[{at}] = epilogue(ch, acc);\n",
        split = split(2 * c, s.dst.w, ["ch", "ox", "oy"]),
        dil = s.dilation,
        loc_w = s.loc_weights,
        sur_w = s.sur_weights,
        loc_b = s.loc_bias,
        sur_b = s.sur_bias,
        h = s.src.h,
        w = s.src.w,
        load = load(&s.src, "cc", "u32(iy)", "u32(ix)"),
        dst = mem(s.dst.mem),
        at = at(&s.dst, "ch", "oy", "ox"),
    );
    (body, 2 * c * s.dst.w * s.dst.h)
}

/// `AvgPool2d(3, stride 2, padding 1)`, padding counted.
fn avg_pool(s: &AvgPool) -> (String, usize) {
    let body = format!(
        "{split}\
         \x20   var sum = 0.0;\n\
         \x20   for (var ky = 0; ky < 3; ky++) {{\n\
         \x20       let iy = i32(oy * 2u) + ky - 1;\n\
         \x20       if (iy < 0 || iy >= {h}) {{ continue; }}\n\
         \x20       for (var kx = 0; kx < 3; kx++) {{\n\
         \x20           let ix = i32(ox * 2u) + kx - 1;\n\
         \x20           if (ix < 0 || ix >= {w}) {{ continue; }}\n\
         \x20           sum += {load};\n\
         \x20       }}\n\
         \x20   }}\n\
         \x20   let stored = epilogue(c, sum * (1.0 / 9.0));\n\
         \x20   {dst}[{at}] = stored;\n{tee}",
        split = split(s.dst.c, s.dst.w, ["c", "ox", "oy"]),
        tee = tee_store(s.tee, "stored", "oy", "ox"),
        h = s.src.h,
        w = s.src.w,
        load = load(&s.src, "c", "u32(iy)", "u32(ix)"),
        dst = mem(s.dst.mem),
        at = at(&s.dst, "c", "oy", "ox"),
    );
    (body, s.dst.c * s.dst.w * s.dst.h)
}

/// `dst = epilogue(src [* scale] [+ add])`.
fn elementwise(s: &Elementwise) -> (String, usize) {
    let scale = s.scale.map(|o| format!("    v = v * arena[{o}u + c];\n")).unwrap_or_default();
    let add = s.add.map(|a| format!("    v = v + {};\n", load(&a, "c", "y", "x"))).unwrap_or_default();
    let tee = tee_store(s.tee, "stored", "y", "x");
    let body = format!(
        "{split}    var v = {src};\n{scale}{add}    let stored = epilogue(c, v);\n    {dst}[{at}] = stored;\n{tee}",
        split = split(s.dst.c, s.dst.w, ["c", "x", "y"]),
        src = load(&s.src, "c", "y", "x"),
        dst = mem(s.dst.mem),
        at = at(&s.dst, "c", "y", "x"),
    );
    (body, s.dst.c * s.dst.w * s.dst.h)
}

/// Row `y`'s channel sums of `x` into `sums + y * c`.
fn channel_sums(s: &ChannelSums) -> (String, usize) {
    let c = s.x.c;
    let body = format!(
        "    let c = i % {c}u;\n    let y = i / {c}u;\n    var sum = 0.0;\n\
         \x20   for (var x = 0u; x < {w}u; x++) {{ sum += {load}; }}\n\
         \x20   arena[{sums}u + y * {c}u + c] = sum;\n",
        w = s.x.w,
        load = load(&s.x, "c", "y", "x"),
        sums = s.sums,
    );
    (body, c * s.x.h)
}

/// F_glo's squeeze in one workgroup: means, FC + ReLU, FC + sigmoid, with a
/// barrier between the stages (each reads what all threads of the one before wrote).
fn squeeze(s: &Squeeze) -> String {
    let (c, rows, hidden) = (s.x.c, s.x.h, s.hidden);
    let mean = s.scratch + rows * c;
    let hid = mean + c;
    let scale = s.scale_offset();
    let inv = 1.0 / (s.x.h * s.x.w) as f32;
    format!(
        "@compute @workgroup_size({WORKGROUP_SIZE})\n\
         fn main(@builtin(local_invocation_index) li: u32) {{\n\
         \x20   for (var i = li; i < {c}u; i += {WORKGROUP_SIZE}u) {{\n\
         \x20       var sum = 0.0;\n\
         \x20       for (var y = 0u; y < {rows}u; y++) {{ sum += arena[{scratch}u + y * {c}u + i]; }}\n\
         \x20       arena[{mean}u + i] = sum;\n\
         \x20   }}\n\
         \x20   storageBarrier();\n\
         \x20   for (var j = li; j < {hidden}u; j += {WORKGROUP_SIZE}u) {{\n\
         \x20       var acc = weights[{fc1_b}u + j];\n\
         \x20       for (var i = 0u; i < {c}u; i++) {{ acc += weights[{fc1_w}u + j * {c}u + i] * arena[{mean}u + i] * {inv:?}; }}\n\
         \x20       arena[{hid}u + j] = max(acc, 0.0);\n\
         \x20   }}\n\
         \x20   storageBarrier();\n\
         \x20   for (var i = li; i < {c}u; i += {WORKGROUP_SIZE}u) {{\n\
         \x20       var acc = weights[{fc2_b}u + i];\n\
         \x20       for (var j = 0u; j < {hidden}u; j++) {{ acc += weights[{fc2_w}u + i * {hidden}u + j] * arena[{hid}u + j]; }}\n\
         \x20       arena[{scale}u + i] = 1.0 / (1.0 + exp(-acc));\n\
         \x20   }}\n\
         }}\n",
        scratch = s.scratch,
        fc1_b = s.fc1_bias,
        fc1_w = s.fc1_weight,
        fc2_b = s.fc2_bias,
        fc2_w = s.fc2_weight,
    )
}

/// `fn tap(in_size, out_size, dst) -> (i0, i1, w0, w1)`: PyTorch's bilinear
/// source indices and weights (align_corners = False), as `head.rs` computes them.
const BILINEAR_TAP: &str = "struct Tap { i0: u32, i1: u32, w0: f32, w1: f32 }\n\n\
fn tap(in_size: u32, out_size: u32, dst: u32) -> Tap {\n\
\x20   let scale = f32(in_size) / f32(out_size);\n\
\x20   let src = max(scale * (f32(dst) + 0.5) - 0.5, 0.0);\n\
\x20   let i0 = min(u32(src), in_size - 1u);\n\
\x20   let i1 = select(i0, i0 + 1u, i0 < in_size - 1u);\n\
\x20   let l1 = src - f32(i0);\n\
\x20   return Tap(i0, i1, 1.0 - l1, l1);\n\
}\n\n";

/// The upsampled score of channel `c` at `(oy, ox)`, as `fn score(c, oy, ox)`.
fn score_function(src: &View, height: usize, width: usize) -> String {
    format!(
        "{BILINEAR_TAP}fn score(c: u32, oy: u32, ox: u32) -> f32 {{\n\
         \x20   let ty = tap({h}u, {height}u, oy);\n\
         \x20   let tx = tap({w}u, {width}u, ox);\n\
         \x20   let top = tx.w0 * {a} + tx.w1 * {b};\n\
         \x20   let bottom = tx.w0 * {c} + tx.w1 * {d};\n\
         \x20   return ty.w0 * top + ty.w1 * bottom;\n\
         }}\n\n",
        h = src.h,
        w = src.w,
        a = load(src, "c", "ty.i0", "tx.i0"),
        b = load(src, "c", "ty.i0", "tx.i1"),
        c = load(src, "c", "ty.i1", "tx.i0"),
        d = load(src, "c", "ty.i1", "tx.i1"),
    )
}

fn upsample(s: &Upsample) -> (String, usize) {
    let body = format!(
        "{split}    {dst}[{at}] = score(c, oy, ox);\n",
        split = split(s.dst.c, s.dst.w, ["c", "ox", "oy"]),
        dst = mem(s.dst.mem),
        at = at(&s.dst, "c", "oy", "ox"),
    );
    (body, s.dst.c * s.dst.w * s.dst.h)
}

/// Four pixels per invocation, their labels packed little-endian into one `u32`.
fn upsample_argmax(s: &UpsampleArgmax) -> Result<(String, usize), WgslError> {
    let d = &s.dst;
    if d.offset != 0 || d.pixel_stride != 1 || d.row_stride != d.w {
        return Err(WgslError::SparseLabels);
    }
    let pixels = d.h * d.w;
    let body = format!(
        "    var word = 0u;\n\
         \x20   for (var k = 0u; k < 4u; k++) {{\n\
         \x20       let p = i * 4u + k;\n\
         \x20       if (p >= {pixels}u) {{ break; }}\n\
         \x20       let oy = p / {w}u;\n\
         \x20       let ox = p % {w}u;\n\
         \x20       var best = 0u;\n\
         \x20       var best_score = score(0u, oy, ox);\n\
         \x20       for (var c = 1u; c < {classes}u; c++) {{\n\
         \x20           let value = score(c, oy, ox);\n\
         \x20           if (value > best_score) {{ best = c; best_score = value; }}\n\
         \x20       }}\n\
         \x20       word |= best << (8u * k);\n\
         \x20   }}\n\
         \x20   labels[i] = word;\n",
        w = d.w,
        classes = s.src.c,
    );
    Ok((body, pixels.div_ceil(4)))
}
