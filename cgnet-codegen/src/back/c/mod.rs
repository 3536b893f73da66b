//! The C backend: a `CompiledModel` as standalone C99 for mobile SDKs.
//!
//! `NAME.h` declares the API; `NAME.c` holds the 8-lane SIMD layer of the
//! target, the kernels (written once in `kernels.c` over that layer), the steps
//! as `static const` structs and the straight-line body; `NAME_weights.c` holds
//! the packed weights (or `NAME.weights`, a raw blob, with `weights_blob`).
//! No malloc, no printf, no mutable globals: two arenas allow two concurrent runs.

pub mod toolchain;
pub mod webgpu;

use std::ops::Range;

use cgnet_runtime::program::{
    band_chunk_rows, Act, Epilogue, FieldKind, FieldValue, Mem, Step, View, ALL_ROWS, STEP_SCHEMAS,
};

use super::wgsl::WgslError;
use super::writer::Writer;
use super::{provenance, CompiledModel};
use crate::stream::Streaming;

/// The instruction set emitted C is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CTarget {
    Scalar,
    Avx2,
    /// AVX-512F: 16-lane vectors, twice the register tiles; bit-identical to `Avx2`.
    Avx512,
    Neon,
    /// The GPU program with a host over `webgpu.h` ([`webgpu`]); no CPU kernels.
    WebGpu,
}

impl CTarget {
    pub fn name(self) -> &'static str {
        match self {
            CTarget::Scalar => "c-scalar",
            CTarget::Avx2 => "c-avx2",
            CTarget::Avx512 => "c-avx512",
            CTarget::Neon => "c-neon",
            CTarget::WebGpu => "c-webgpu",
        }
    }

    /// Whether the target runs the CPU kernels (every target but c-webgpu).
    pub fn is_cpu(self) -> bool {
        self != CTarget::WebGpu
    }

    /// How to compile for the target: streamed regions on the CPU, none for
    /// c-webgpu (its dispatches run whole steps).
    pub fn streaming(self) -> Streaming {
        if self.is_cpu() {
            Streaming::Auto
        } else {
            Streaming::Off
        }
    }

    fn simd_layer(self) -> &'static str {
        match self {
            CTarget::Scalar => include_str!("simd_scalar.h"),
            CTarget::Avx2 => include_str!("simd_avx2.h"),
            CTarget::Avx512 => include_str!("simd_avx512.h"),
            CTarget::Neon => include_str!("simd_neon.h"),
            CTarget::WebGpu => "",
        }
    }

    /// Compiler flags the target needs beyond `-O3`.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            CTarget::Avx2 => &["-mavx2", "-mfma"],
            CTarget::Avx512 => &["-mavx512f", "-mavx2", "-mfma"],
            _ => &[],
        }
    }

    /// Preprocessor guards that stop a build without the target's instruction set
    /// with a message naming the flags (instead of an intrinsic inlining error).
    fn guard(self) -> &'static str {
        match self {
            CTarget::Scalar | CTarget::WebGpu => "",
            CTarget::Avx2 => {
                "#if !defined(__AVX2__) || !defined(__FMA__)\n\
                 #error \"this file is generated for c-avx2: compile it with -mavx2 -mfma (GCC, Clang)\"\n\
                 #endif\n"
            }
            CTarget::Avx512 => {
                "#if !defined(__AVX512F__) || !defined(__AVX2__) || !defined(__FMA__)\n\
                 #error \"this file is generated for c-avx512: compile it with -mavx512f -mavx2 -mfma (GCC, Clang)\"\n\
                 #endif\n"
            }
            CTarget::Neon => {
                "#if !defined(__aarch64__) || !defined(__ARM_NEON)\n\
                 #error \"this file is generated for c-neon: compile it for AArch64 (e.g. aarch64-linux-gnu-gcc, the Android NDK's arm64-v8a, Xcode's arm64)\"\n\
                 #endif\n"
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    pub target: CTarget,
    /// Weights in a binary file passed at run time instead of a C array.
    pub weights_blob: bool,
}

/// One emitted file.
pub struct File {
    pub name: String,
    pub contents: FileContents,
}

pub enum FileContents {
    Text(String),
    Binary(Vec<u8>),
}

impl File {
    fn text(name: String, contents: String) -> Self {
        Self { name, contents: FileContents::Text(contents) }
    }
}

/// Every file of a model for `target`, in memory (writing them is the caller's).
/// Only c-webgpu can fail (a program too large for the GPU's 32-bit indices).
pub fn emit(model: &CompiledModel, options: &Options) -> Result<Vec<File>, WgslError> {
    if options.target == CTarget::WebGpu {
        return webgpu::emit(model, options);
    }
    let n = &model.name;
    let mut files = vec![
        File::text(format!("{n}.h"), header(model, options)),
        File::text(format!("{n}.c"), source(model, options)),
    ];
    if options.weights_blob {
        let bytes = model.weights.iter().flat_map(|v| v.to_le_bytes()).collect();
        files.push(File { name: format!("{n}.weights"), contents: FileContents::Binary(bytes) });
    } else {
        files.push(File::text(format!("{n}_weights.c"), weights_source(model)));
    }
    files.push(File::text("cgnet_pthread_pool.h".into(), include_str!("pthread_pool.h").to_string()));
    files.push(File::text("CMakeLists.txt".into(), cmake(model, options)));
    files.push(File::text("README.md".into(), usage(model, options)));
    Ok(files)
}

fn upper(model: &CompiledModel) -> String {
    model.name.to_uppercase()
}

/// `const float *weights, ` in blob mode (the first parameter of every entry point).
fn weights_param(options: &Options) -> &'static str {
    if options.weights_blob {
        "const float *weights, "
    } else {
        ""
    }
}

fn file_header(w: &mut Writer, model: &CompiledModel, options: &Options) {
    let mut lines = provenance(model);
    lines.push(format!("target: {}", options.target.name()));
    w.comment(&lines);
}

pub fn header(model: &CompiledModel, options: &Options) -> String {
    let (n, u) = (&model.name, upper(model));
    let wp = weights_param(options);
    let mut w = Writer::default();
    let guard = format!("{u}_H");
    open_header(&mut w, model, options, &guard, &[]);
    for (name, value) in shape_defines(model) {
        w.line(format!("#define {u}_{name} {value}"));
    }
    if options.weights_blob {
        w.line(format!("#define {u}_WEIGHTS_BYTES {}u", model.weights.len() * 4));
    }
    w.line(format!(
        "#define {u}_WEIGHTS_FINGERPRINT \"{}\" /* spec + packing recipe + cgnetc version */",
        model.recipe.fingerprint
    ));
    w.blank();
    w.comment(&[
        "How a host lends its threads: `run` calls fn(arg, i) exactly once for every i in".into(),
        "0..n, in any order and on any threads (the caller's included), and returns when".into(),
        "all have finished. `n` is a number of chunks of a step (fixed per step, often".into(),
        "more than the threads: claim them dynamically, e.g. OpenMP schedule(dynamic) or".into(),
        "dispatch_apply), not a number of threads. `threads` > 1 enables the split.".into(),
        "Results are bit-identical for every thread count and every order.".into(),
    ]);
    parallel_for_type(&mut w, n);
    w.blank();
    w.line(format!("/* == {u}_ARENA_BYTES: the arena every entry point needs (64-byte aligned). */"));
    w.line(format!("size_t {n}_arena_bytes(void);"));
    w.blank();
    w.line(format!(
        "/* input: [1,3,{},{}] NCHW float, as PyTorch. Returns 0, or {u}_E_NULL / {u}_E_ALIGN. */",
        model.height, model.width
    ));
    entry_point_declarations(&mut w, model, |entry, output| {
        format!("int {n}_{entry}({wp}const float *input, {output}, void *arena);")
    });
    w.blank();
    w.comment(&[
        format!(
            "picture: [{},{},3] interleaved 8-bit RGB, row-major (as image decoders give it).",
            model.height, model.width
        ),
        "The first convolution and the input-injection pools normalise it as they read it:".to_string(),
        format!("(byte - {u}_MEAN[c]) * (1 / {u}_STD[c]) in float: no float copy, the same arena,"),
        "and bit for bit the result of the float entry point on the picture so normalised.".into(),
    ]);
    for (entry, output) in ENTRY_OUTPUTS {
        w.line(format!("int {n}_{entry}_rgb8({wp}const uint8_t *picture, {output}, void *arena);"));
    }
    w.blank();
    w.line("/* The same, each step split across the host's threads (results are bit-identical to the serial calls for any thread count). */");
    for (input, suffix) in [("const float *input", ""), ("const uint8_t *picture", "_rgb8")] {
        for (entry, output) in ENTRY_OUTPUTS {
            w.line(format!(
                "int {n}_{entry}{suffix}_parallel({wp}{input}, {output}, void *arena, const {n}_parallel_for *pf);"
            ));
        }
    }
    w.blank();
    close_header(&mut w, &guard);
    w.finish()
}

/// A header's start: provenance, include guard, the standard includes and
/// `extra_includes`, and the C++ linkage block.
fn open_header(w: &mut Writer, model: &CompiledModel, options: &Options, guard: &str, extra_includes: &[&str]) {
    file_header(w, model, options);
    w.line(format!("#ifndef {guard}"));
    w.line(format!("#define {guard}"));
    w.blank();
    for include in ["<stddef.h>", "<stdint.h>"].iter().chain(extra_includes) {
        w.line(format!("#include {include}"));
    }
    w.blank();
    w.line("#ifdef __cplusplus");
    w.line("extern \"C\" {");
    w.line("#endif");
    w.blank();
}

/// The end of a header opened by [`open_header`].
fn close_header(w: &mut Writer, guard: &str) {
    w.line("#ifdef __cplusplus");
    w.line("}");
    w.line("#endif");
    w.blank();
    w.line(format!("#endif /* {guard} */"));
}

/// The `#define NAME_...` sizes both C headers (CPU and GPU) share: identical
/// text, so a file may include both.
fn shape_defines(model: &CompiledModel) -> Vec<(&'static str, String)> {
    vec![
        ("INPUT_CHANNELS", "3".to_string()),
        ("INPUT_HEIGHT", model.height.to_string()),
        ("INPUT_WIDTH", model.width.to_string()),
        ("CLASSES", model.classes.to_string()),
        ("LOGITS_HEIGHT", model.logits.h.to_string()),
        ("LOGITS_WIDTH", model.logits.w.to_string()),
        ("ARENA_BYTES", format!("{}u", model.arena_bytes)),
        ("ARENA_ALIGN", "64u".into()),
        ("PARAMETERS", format!("{}u", model.parameters)),
        ("MACS", format!("{}ull", model.macs)),
        ("MEAN", c_floats(&model.spec.normalisation().0)),
        ("STD", c_floats(&model.spec.normalisation().1)),
        ("E_NULL", "(-1)".into()),
        ("E_ALIGN", "(-2)".into()),
    ]
}

/// `{a, b, c}` with every float as a C literal that reads back as the same f32.
fn c_floats(values: &[f32]) -> String {
    let literals: Vec<String> = values.iter().map(|v| format!("{v:?}f")).collect();
    format!("{{{}}}", literals.join(", "))
}

/// The run, scores and segment declarations (`declaration(entry, "float *logits")`),
/// each after a comment with its output's shape.
fn entry_point_declarations(w: &mut Writer, model: &CompiledModel, declaration: impl Fn(&str, &str) -> String) {
    let (c, h, wd) = (model.classes, model.height, model.width);
    let entries = [
        ("run", "float *logits", format!("logits: [1,{c},{},{}] NCHW.", model.logits.h, model.logits.w)),
        ("scores", "float *scores", format!("scores: [1,{c},{h},{wd}] NCHW, bilinearly upsampled logits.")),
        ("segment", "uint8_t *labels", format!("labels: [{h}*{wd}] class indices.")),
    ];
    for (entry, output, shape) in entries {
        w.line(format!("/* {shape} */"));
        w.line(declaration(entry, output));
    }
}

/// Each entry point and its output parameter.
const ENTRY_OUTPUTS: [(&str, &str); 3] =
    [("run", "float *logits"), ("scores", "float *scores"), ("segment", "uint8_t *labels")];

/// `NAME_task_fn` and `NAME_parallel_for`: how a host lends its threads.
fn parallel_for_type(w: &mut Writer, n: &str) {
    w.line(format!("typedef void (*{n}_task_fn)(void *arg, size_t index);"));
    w.block(format!("typedef struct {n}_parallel_for {{"), &format!("}} {n}_parallel_for;"), |w| {
        w.line("void *ctx;");
        w.line("size_t threads;");
        w.line(format!("void (*run)(void *ctx, size_t n, {n}_task_fn fn, void *arg);"));
    });
}

/// `cg_exec_group`: output rows `y0..y1` of a group of `count` steps that run
/// chunk by chunk (see `Exec::steps_rows`; all rows, or a band of a streamed
/// region), cut into chunks of `chunk` rows that the host's `parallel_for`
/// runs when it has threads and there is more than one chunk; `cg_exec`: one
/// step, a group of one.
fn exec_function(w: &mut Writer, n: &str) {
    let pf = format!("const {n}_parallel_for *pf");
    w.block(
        format!(
            "static void cg_exec_group(size_t count, const int *kinds, const void *const *steps, size_t y0, size_t y1, size_t chunk, const cg_mem *m, {pf}) {{"
        ),
        "}",
        |w| {
            w.line("const size_t chunks = (y1 - y0 + chunk - 1) / chunk;");
            w.line("size_t k;");
            w.block("if (pf && pf->threads > 1 && chunks > 1 && kinds[0] != CG_SQUEEZE) {", "}", |w| {
                w.line("cg_task t;");
                w.line("t.count = count; t.kinds = kinds; t.steps = steps; t.m = m; t.y0 = y0; t.y1 = y1; t.chunk = chunk;");
                w.line("pf->run(pf->ctx, chunks, cg_task_run, &t);");
                w.line("return;");
            });
            w.line("for (k = 0; k < count; k++) cg_rows(kinds[k], steps[k], m, y0, y1);");
        },
    );
    w.block(
        // `inline`: a test program that runs only groups leaves it unused, without a warning.
        format!(
            "static inline void cg_exec(int kind, const void *step, size_t y0, size_t y1, size_t chunk, const cg_mem *m, {pf}) {{"
        ),
        "}",
        |w| w.line("cg_exec_group(1, &kind, &step, y0, y1, chunk, m, pf);"),
    );
}

/// A test program that runs lists of steps (`cases`) on the C kernels of
/// `target`, each case serially and through the pthread pool: the C half of the
/// kernel battery. It reads `cases.bin` (per case: u64 arena, input and weights
/// lengths, then those floats) and writes, per case, the arena after the serial
/// run and after the parallel run. Usage: `battery IN OUT THREADS`.
pub fn battery_source(target: CTarget, cases: &[Vec<Vec<Step>>]) -> String {
    let mut w = Writer::default();
    w.line("#define _POSIX_C_SOURCE 200112L");
    w.line("#include <math.h>");
    w.line("#include <stdint.h>");
    w.line("#include <stdio.h>");
    w.line("#include <stdlib.h>");
    w.line("#include <string.h>");
    w.line("#include \"cgnet_pthread_pool.h\"");
    w.blank();
    parallel_for_type(&mut w, "battery");
    w.raw(target.simd_layer());
    w.blank();
    w.raw(&kernels_source());
    w.blank();
    exec_function(&mut w, "battery");
    w.blank();
    for (i, groups) in cases.iter().enumerate() {
        for (j, step) in groups.iter().flatten().enumerate() {
            let (ty, _, init) = step_literal(step);
            w.line(format!("static const {ty} c{i}_s{j} = {init};"));
        }
    }
    w.blank();
    w.block("static void run_case(size_t i, const cg_mem *m, const battery_parallel_for *pf) {", "}", |w| {
        w.line("switch (i) {");
        for (i, groups) in cases.iter().enumerate() {
            let mut first = 0;
            let calls: Vec<String> = groups
                .iter()
                .map(|group| {
                    let rows = 0..group[0].rows().unwrap_or(1);
                    let call = exec_group_call(group, rows, |j| format!("&c{i}_s{}", first + j), "m");
                    first += group.len();
                    call
                })
                .collect();
            w.line(format!("case {i}: {} break;", calls.join(" ")));
        }
        w.line("default: break;");
        w.line("}");
    });
    w.blank();
    w.raw(&include_str!("battery_main.c").replace("CASES", &cases.len().to_string()));
    w.finish()
}

fn view(v: &View) -> String {
    let mem = match v.mem {
        Mem::Arena => "CG_ARENA",
        Mem::Input => "CG_INPUT",
        Mem::Logits => "CG_LOGITS",
        Mem::Scores => "CG_SCORES",
        Mem::Labels => "CG_LABELS",
        Mem::Rgb8 => "CG_RGB8",
    };
    let row_mask = if v.row_mask == ALL_ROWS { "CG_ALL_ROWS".to_string() } else { v.row_mask.to_string() };
    format!(
        "{{.mem = {mem}, .offset = {}, .c = {}, .h = {}, .w = {}, .row_stride = {}, .pixel_stride = {}, .channel_stride = {}, .row_mask = {row_mask}}}",
        v.offset, v.c, v.h, v.w, v.row_stride, v.pixel_stride, v.channel_stride
    )
}

fn act(a: &Act) -> String {
    let (kind, off) = match a {
        Act::None => ("CG_ACT_NONE", 0),
        Act::Relu => ("CG_ACT_RELU", 0),
        Act::Prelu(o) => ("CG_ACT_PRELU", *o),
    };
    format!("{{.kind = {kind}, .off = {off}}}")
}

fn epilogue(e: &Epilogue) -> String {
    let (has, sc, sh) = e.affine.map_or((0, 0, 0), |(a, b)| (1, a, b));
    format!("{{.act = {}, .has_affine = {has}, .scale = {sc}, .shift = {sh}, .act2 = {}}}", act(&e.act), act(&e.act2))
}

/// The C declaration of one field of the step schema.
fn field_declaration(name: &str, kind: FieldKind) -> String {
    match kind {
        FieldKind::View => format!("cg_view {name};"),
        FieldKind::Size => format!("size_t {name};"),
        FieldKind::Epilogue => format!("cg_epilogue {name};"),
        FieldKind::OptionalSize => format!("int has_{name}; size_t {name};"),
        FieldKind::OptionalView => format!("int has_{name}; cg_view {name};"),
    }
}

/// The designated initializer of one field.
fn field_initializer(name: &str, value: &FieldValue) -> String {
    match value {
        FieldValue::View(v) => format!(".{name} = {}", view(v)),
        FieldValue::Size(x) => format!(".{name} = {x}"),
        FieldValue::Epilogue(e) => format!(".{name} = {}", epilogue(e)),
        FieldValue::OptionalSize(x) => format!(".has_{name} = {}, .{name} = {}", u8::from(x.is_some()), x.unwrap_or(0)),
        FieldValue::OptionalView(v) => {
            let empty = View {
                mem: Mem::Arena,
                offset: 0,
                c: 0,
                h: 0,
                w: 0,
                row_stride: 0,
                pixel_stride: 0,
                channel_stride: 0,
                row_mask: ALL_ROWS,
            };
            format!(".has_{name} = {}, .{name} = {}", u8::from(v.is_some()), view(&v.unwrap_or(empty)))
        }
    }
}

/// `typedef struct { ... } cg_NAME;` for every step struct of the schema.
pub fn step_typedefs() -> String {
    STEP_SCHEMAS
        .iter()
        .map(|schema| {
            let fields: Vec<String> = schema.fields.iter().map(|(name, kind)| field_declaration(name, *kind)).collect();
            format!("typedef struct {{ {} }} {};\n", fields.join(" "), schema.c_type)
        })
        .collect()
}

const STEP_TYPES_MARKER: &str =
    "/* CG_STEP_TYPES: the step structs, generated from cgnet-runtime's step schema (program.rs). */\n";

/// `kernels.c` with the step structs of the schema in place.
fn kernels_source() -> String {
    let kernels = include_str!("kernels.c");
    debug_assert!(kernels.contains(STEP_TYPES_MARKER));
    kernels.replacen(STEP_TYPES_MARKER, &format!("{STEP_TYPES_MARKER}{}", step_typedefs()), 1)
}

/// The step's C type, kind constant, row count and designated initializer,
/// all from the step schema.
pub fn step_literal(step: &Step) -> (&'static str, &'static str, String) {
    let (_, kind, schema, values) = step.parts();
    let fields: Vec<String> =
        schema.fields.iter().zip(&values).map(|((name, _), value)| field_initializer(name, value)).collect();
    (schema.c_type, kind, format!("{{{}}}", fields.join(", ")))
}

/// The statement that runs `step` (at `step_ptr`, e.g. `&s3`) on memories `m`:
/// its kind, its rows and its chunk size (the same for every thread count) are constants.
pub fn exec_call(step: &Step, step_ptr: &str, m: &str) -> String {
    exec_rows_call(step, 0..step.rows().unwrap_or(1), step_ptr, m)
}

/// `cg_exec` of output rows `rows` of a step.
fn exec_rows_call(step: &Step, rows: Range<usize>, step_ptr: &str, m: &str) -> String {
    let kind = step.parts().1;
    let chunk = band_chunk_rows(std::slice::from_ref(step), rows.len());
    format!("cg_exec({kind}, {step_ptr}, {}, {}, {chunk}, {m}, pf);", rows.start, rows.end)
}

/// The C call that runs output rows `rows` of a group of steps (`cg_exec` for
/// a step alone); `step_ptr(i)` is the expression for a pointer to the group's
/// step `i`.
pub fn exec_group_call(group: &[Step], rows: Range<usize>, step_ptr: impl Fn(usize) -> String, m: &str) -> String {
    match group {
        [step] => exec_rows_call(step, rows, &step_ptr(0), m),
        _ => {
            let kinds: Vec<&str> = group.iter().map(|s| s.parts().1).collect();
            let ptrs: Vec<String> = (0..group.len()).map(step_ptr).collect();
            let chunk = band_chunk_rows(group, rows.len());
            format!(
                "{{ static const int kinds[] = {{{}}}; const void *const steps[] = {{{}}}; cg_exec_group({}, kinds, steps, {}, {}, {chunk}, {m}, pf); }}",
                kinds.join(", "),
                ptrs.join(", "),
                group.len(),
                rows.start,
                rows.end
            )
        }
    }
}

pub fn source(model: &CompiledModel, options: &Options) -> String {
    let (n, u) = (&model.name, upper(model));
    let wp = weights_param(options);
    let mut w = Writer::default();
    file_header(&mut w, model, options);
    if !options.target.guard().is_empty() {
        w.raw(options.target.guard());
    }
    w.line(format!("#include \"{n}.h\""));
    w.blank();
    w.line("#include <math.h>");
    w.blank();
    w.raw(options.target.simd_layer());
    w.blank();
    w.raw(&kernels_source());
    w.blank();
    w.line("/* ---- The model: every step's views and weight offsets are constants. */");
    if !options.weights_blob {
        w.line(format!("extern const float {n}_packed_weights[{}];", model.weights.len()));
    }
    let mut pointers = Vec::new();
    for (i, step) in model.steps.iter().enumerate() {
        let (ty, _, init) = step_literal(step);
        w.line(format!("static const {ty} s{i} = {init};"));
        match step.reading_rgb8() {
            // A reader of the input has a twin reading the 8-bit picture.
            Some(picture_step) => {
                let (_, _, init) = step_literal(&picture_step);
                w.line(format!("static const {ty} s{i}_rgb8 = {init};"));
                pointers.push(format!("m->rgb8 ? &s{i}_rgb8 : &s{i}"));
            }
            None => pointers.push(format!("&s{i}")),
        }
    }
    let calls: Vec<String> = model
        .calls
        .iter()
        .map(|call| {
            let g = &call.steps;
            exec_group_call(&model.steps[g.clone()], call.rows.clone(), |i| pointers[g.start + i].clone(), "m")
        })
        .collect();
    let inv_std = model.normalisation().inv_std;
    w.line(format!("static const float cg_mean[3] = {u}_MEAN;"));
    w.line(format!(
        "static const float cg_inv_std[3] = {}; /* 1 / {u}_STD, rounded to float once */",
        c_floats(&inv_std)
    ));
    let tails = &model.tails;
    for (name, tail) in [("tail_run", &tails.run), ("tail_scores", &tails.scores), ("tail_segment", &tails.segment)] {
        let (ty, _, init) = step_literal(tail);
        w.line(format!("static const {ty} {name} = {init};"));
    }
    w.blank();
    exec_function(&mut w, n);
    w.blank();
    w.block(format!("static void {n}_body(const cg_mem *m, const {n}_parallel_for *pf) {{"), "}", |w| {
        for call in &calls {
            w.line(call);
        }
    });
    w.blank();
    w.line(format!("size_t {n}_arena_bytes(void) {{ return {u}_ARENA_BYTES; }}"));
    w.blank();
    let weights_expr = if options.weights_blob { "weights" } else { &format!("{n}_packed_weights") };
    w.comment(&["Binds the memories of one call: the float input or the picture (the other is null).".to_string()]);
    w.block(
        format!(
            "static int {n}_prepare({wp}const float *input, const uint8_t *picture, const void *out, void *arena, cg_mem *m) {{"
        ),
        "}",
        |w| {
            let null_weights = if options.weights_blob { " || !weights" } else { "" };
            w.line(format!("if ((!input && !picture) || !out || !arena{null_weights}) return {u}_E_NULL;"));
            w.line(format!("if ((uintptr_t)arena % {u}_ARENA_ALIGN != 0) return {u}_E_ALIGN;"));
            w.line("m->arena = (float *)arena;");
            w.line("m->input = input;");
            w.line("m->logits = 0;");
            w.line("m->scores = 0;");
            w.line("m->labels = 0;");
            w.line(format!("m->w = {weights_expr};"));
            w.line("m->rgb8 = picture;");
            w.line("m->mean = cg_mean;");
            w.line("m->inv_std = cg_inv_std;");
            w.line("return 0;");
        },
    );
    let pass_w = if options.weights_blob { "weights, " } else { "" };
    let inputs = [("", "const float *input", "input, 0"), ("_rgb8", "const uint8_t *picture", "0, picture")];
    for (entry, out_ty, out_name, tail) in [
        ("run", "float *", "logits", ("m.logits = logits;", "tail_run", &tails.run)),
        ("scores", "float *", "scores", ("m.scores = scores;", "tail_scores", &tails.scores)),
        ("segment", "uint8_t *", "labels", ("m.labels = labels;", "tail_segment", &tails.segment)),
    ] {
        let (bind, name, step) = tail;
        let tail = format!("{bind}\n    {}", exec_call(step, &format!("&{name}"), "&m"));
        for (suffix, input, prepare_args) in inputs {
            let arg = input.rsplit('*').next().unwrap_or("input");
            w.blank();
            w.block(
                format!("int {n}_{entry}{suffix}_parallel({wp}{input}, {out_ty}{out_name}, void *arena, const {n}_parallel_for *pf) {{"),
                "}",
                |w| {
                    w.line("cg_mem m;");
                    w.line(format!("int status = {n}_prepare({pass_w}{prepare_args}, {out_name}, arena, &m);"));
                    w.line("if (status != 0) return status;");
                    w.line(format!("{n}_body(&m, pf);"));
                    for l in tail.lines() {
                        w.line(l.trim());
                    }
                    w.line("return 0;");
                },
            );
            w.block(format!("int {n}_{entry}{suffix}({wp}{input}, {out_ty}{out_name}, void *arena) {{"), "}", |w| {
                w.line(format!("return {n}_{entry}{suffix}_parallel({pass_w}{arg}, {out_name}, arena, 0);"));
            });
        }
    }
    w.finish()
}

pub fn weights_source(model: &CompiledModel) -> String {
    let mut w = Writer::default();
    w.comment(&provenance(model));
    let mut body = String::with_capacity(model.weights.len() * 16);
    for (i, v) in model.weights.iter().enumerate() {
        // `{:e}` prints the shortest text that reads back as the same f32.
        body.push_str(&format!("{v:e}f,"));
        body.push(if i % 8 == 7 { '\n' } else { ' ' });
    }
    // Compilers align a large array to 16 (clang) or 32 bytes (gcc): half of
    // AVX-512's weight loads would straddle two cache lines.
    w.line("/* 64-byte aligned: no whole-vector weight load straddles two cache lines. */");
    w.line("#if defined(__GNUC__)");
    w.line("__attribute__((aligned(64)))");
    w.line("#elif defined(_MSC_VER)");
    w.line("__declspec(align(64))");
    w.line("#endif");
    w.line(format!("const float {}_packed_weights[{}] = {{", model.name, model.weights.len()));
    w.raw(&body);
    w.line("};");
    w.finish()
}

fn cmake(model: &CompiledModel, options: &Options) -> String {
    let n = &model.name;
    let sources = if options.weights_blob { format!("{n}.c") } else { format!("{n}.c {n}_weights.c") };
    let flags: Vec<&str> = std::iter::once("-O3").chain(options.target.flags().iter().copied()).collect();
    let mut w = Writer::default();
    w.line(format!("# {}", provenance(model).join("\n# ")));
    w.line("cmake_minimum_required(VERSION 3.10)");
    w.line(format!("project({n} C)"));
    w.line(format!("add_library({n} STATIC {sources})"));
    w.line(format!("target_include_directories({n} PUBLIC ${{CMAKE_CURRENT_SOURCE_DIR}})"));
    w.line(format!("set_target_properties({n} PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON)"));
    w.line(format!("target_compile_options({n} PRIVATE {})", flags.join(" ")));
    w.line("find_library(CGNET_LIBM m)");
    w.line(format!("if(CGNET_LIBM)\n  target_link_libraries({n} PUBLIC ${{CGNET_LIBM}})\nendif()"));
    w.finish()
}

fn usage(model: &CompiledModel, options: &Options) -> String {
    let (n, u) = (&model.name, upper(model));
    let target = options.target;
    let sources = if options.weights_blob { format!("{n}.c") } else { format!("{n}.c {n}_weights.c") };
    let weights = if options.weights_blob {
        format!(
            "Weights are in `{n}.weights` (raw little-endian float32, `{u}_WEIGHTS_BYTES` bytes): load it into a \
             64-byte aligned buffer (`aligned_alloc(64, ...)`; `mmap` gives a page-aligned one) and pass it as the \
             first argument of every call. 4-byte alignment is required; with less than 64, vector weight loads \
             straddle cache lines and inference is slower."
        )
    } else {
        format!("Weights are compiled in (`{n}_weights.c`).")
    };
    let wa = if options.weights_blob { "weights, " } else { "" };
    let flags: Vec<&str> = ["-std=c99", "-O3"].into_iter().chain(target.flags().iter().copied()).collect();
    let compiler = if target == CTarget::Neon { "aarch64-linux-gnu-gcc" } else { "cc" };
    format!(
        "# {n}: CGNet, generated by cgnetc {version} for {target_name}\n\n\
         ## Build\n\n\
         A plain compiler ({target_note}):\n\n\
         ```sh\n{compiler} {flags} -c {sources}\n```\n\n\
         {flag_note}\
         CMake (Android NDK, desktop): from a project outside this folder, give `add_subdirectory` a binary \
         folder, then link the static library `{n}`:\n\n\
         ```cmake\nadd_subdirectory(path/to/{n} ${{CMAKE_BINARY_DIR}}/{n})\ntarget_link_libraries(your_app PRIVATE {n})\n```\n\n\
         Xcode: add `{sources_list}` to the target ({xcode_note}).\n\n\
         ## Use\n\n\
         ```c\n#include \"{n}.h\"\n\n\
         void *arena = aligned_alloc({u}_ARENA_ALIGN, {u}_ARENA_BYTES);  /* once; reuse for every frame */\n\
         int status = {n}_segment({wa}input, labels, arena);           /* 0, {u}_E_NULL or {u}_E_ALIGN */\n```\n\n\
         Input: `float` [1, 3, {h}, {w}], NCHW (three planes R, G, B, each row-major), as PyTorch. The model \
         expects what its weights were trained on; the authors' convention (and the bundled CamVid weights) is \
         pixel values 0..255 minus the training set's per-channel mean, not divided: CamVid's mean is \
         R 105.65775, G 103.329834, B 99.625404.\n\n\
         Entry points: `{n}_run` (logits [1, {c}, {lh}, {lw}] NCHW), `{n}_scores` (bilinearly upsampled scores \
         [1, {c}, {h}, {w}]), `{n}_segment` (labels, one byte per pixel, row-major {h}x{w}); each returns 0 or \
         `{u}_E_NULL` / `{u}_E_ALIGN`. No malloc, no global state: one arena per concurrent inference.\n\n\
         Pictures: `{n}_run_rgb8`, `{n}_scores_rgb8` and `{n}_segment_rgb8` take interleaved 8-bit RGB \
         [{h}, {w}, 3] (row-major, as image decoders and camera APIs give it) instead of floats. The first \
         convolution and the input-injection pools normalise it as they read it, `(byte - {u}_MEAN[c]) * \
         (1 / {u}_STD[c])` in float (the model description's `mean` / `std`): no float copy, the same arena, \
         and bit for bit the result of the float entry point on the picture so normalised.\n\n\
         ## Threads\n\n\
         The `_parallel` variants take a `{n}_parallel_for`, through which the host's thread pool runs each \
         step's chunks of rows; results are bit-identical to the serial calls for any thread count. Hosts without a pool can use the \
         header-only pthread pool shipped beside this file, `cgnet_pthread_pool.h` (link with `-lpthread`):\n\n\
         ```c\n#include \"cgnet_pthread_pool.h\"\n\n\
         cgnet_pool pool;\ncgnet_pool_init(&pool, 0);  /* 0: as many threads as free cores */\n\
         {n}_parallel_for pf = {{ &pool, cgnet_pool_threads(&pool), cgnet_pool_run }};\n\
         {n}_segment_parallel({wa}input, labels, arena, &pf);\ncgnet_pool_destroy(&pool);\n```\n\n\
         ## Weights\n\n{weights}\n",
        version = env!("CARGO_PKG_VERSION"),
        target_name = target.name(),
        target_note = match target {
            CTarget::Scalar | CTarget::WebGpu => "portable C99, any C compiler",
            CTarget::Avx2 => "x86-64 with AVX2 and FMA; the flags are required",
            CTarget::Avx512 => {
                "x86-64 with AVX-512F (and so AVX2 and FMA); the flags are required, and the program \
                 stops with an illegal instruction on a CPU without AVX-512F: ship c-avx2 beside it and \
                 choose at run time (e.g. `__builtin_cpu_supports(\"avx512f\")`)"
            }
            CTarget::Neon => "AArch64; NEON needs no extra flag there",
        },
        flags = flags.join(" "),
        flag_note = match target {
            CTarget::Avx2 => "Without `-mavx2 -mfma` the build stops at an `#error` naming them. \
                 The CMake project sets them itself. The library uses `expf`: link the program with `-lm`.\n\n"
                .to_string(),
            CTarget::Avx512 => "Without `-mavx512f -mavx2 -mfma` the build stops at an `#error` naming them. \
                 The CMake project sets them itself. The library uses `expf`: link the program with `-lm`.\n\n"
                .to_string(),
            CTarget::Neon => format!(
                "`{n}.c` stops at an `#error` when the compiler does not target AArch64. \
                 The library uses `expf`: link with `-lm`.\n\n"
            ),
            CTarget::Scalar | CTarget::WebGpu => "The library uses `expf`: link the program with `-lm`.\n\n".to_string(),
        },
        sources_list = sources.replace(' ', "`, `"),
        xcode_note = match target {
            CTarget::Neon => "arm64 devices; no extra flag",
            CTarget::Avx2 => "x86-64 only: set Other C Flags to `-mavx2 -mfma`",
            CTarget::Avx512 => "x86-64 only: set Other C Flags to `-mavx512f -mavx2 -mfma`",
            CTarget::Scalar | CTarget::WebGpu => "any architecture",
        },
        h = model.height,
        w = model.width,
        c = model.classes,
        lh = model.logits.h,
        lw = model.logits.w,
    )
}
