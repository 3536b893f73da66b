//! The `c-webgpu` target: the GPU program of `back::wgsl` with a C host over
//! the standard `webgpu.h` API (wgpu-native, Dawn), for mobile SDKs.
//!
//! `NAME_gpu.h` declares the API and the session struct (no malloc: the host
//! owns it); `NAME_gpu.c` embeds every kernel's WGSL as a string with its
//! dispatch size, then the host code (`webgpu_host.c`, written once and
//! specialised by name); the weights are the same file the CPU targets emit.

use cgnet_runtime::gpu::{GpuPlan, BINDINGS};

use super::{
    close_header, entry_point_declarations, file_header, open_header, shape_defines, upper, weights_source, File,
    FileContents, Options,
};
use crate::back::wgsl::{self, WgslError};
use crate::back::writer::Writer;
use crate::back::CompiledModel;

/// Longest message `NAME_gpu_error` returns, terminator included.
const ERROR_CHARS: usize = 256;

/// Bytes of a buffer holding `floats` floats (at least one; a multiple of 16).
fn buffer_bytes(floats: usize) -> u64 {
    (floats.max(1) * 4).next_multiple_of(16) as u64
}

/// The eight buffers' sizes in the host's order: arena, weights, input, logits,
/// scores, labels (four per word), upload (the input), read-back (the largest output).
fn buffers(plan: &GpuPlan, weights: usize) -> [u64; 8] {
    let labels = buffer_bytes(plan.labels.div_ceil(4));
    let largest_output = buffer_bytes(plan.logits_floats).max(buffer_bytes(plan.scores_floats)).max(labels);
    [
        buffer_bytes(plan.arena_floats),
        buffer_bytes(weights),
        buffer_bytes(plan.input_floats),
        buffer_bytes(plan.logits_floats),
        buffer_bytes(plan.scores_floats),
        labels,
        buffer_bytes(plan.input_floats),
        largest_output,
    ]
}

/// Every file of the `c-webgpu` target.
pub fn emit(model: &CompiledModel, options: &Options) -> Result<Vec<File>, WgslError> {
    let n = &model.name;
    let plan = wgsl::plan(model)?;
    let mut files = vec![
        File::text(format!("{n}_gpu.h"), header(model, options, &plan)),
        File::text(format!("{n}_gpu.c"), source(model, options, &plan)),
    ];
    if options.weights_blob {
        let bytes = model.weights.iter().flat_map(|v| v.to_le_bytes()).collect();
        files.push(File { name: format!("{n}.weights"), contents: FileContents::Binary(bytes) });
    } else {
        files.push(File::text(format!("{n}_weights.c"), weights_source(model)));
    }
    files.push(File::text("CMakeLists.txt".into(), cmake(model, options)));
    files.push(File::text("README.md".into(), usage(model, options)));
    Ok(files)
}

fn header(model: &CompiledModel, options: &Options, plan: &GpuPlan) -> String {
    let (n, u) = (&model.name, upper(model));
    let sizes = buffers(plan, model.weights.len());
    let weights = if options.weights_blob { ", const float *weights" } else { "" };
    let mut w = Writer::default();
    let guard = format!("{u}_GPU_H");
    open_header(&mut w, model, options, &guard, &["<webgpu/webgpu.h>"]);
    for (name, value) in shape_defines(model) {
        w.line(format!("#define {u}_{name} {value}"));
    }
    let kernels = plan.body.len() + 3 + plan.picture.len();
    let defines = [
        ("GPU_KERNELS", kernels.to_string()),
        ("GPU_BODY_KERNELS", plan.body.len().to_string()),
        ("GPU_PICTURE_KERNELS", plan.picture.len().to_string()),
        ("GPU_LARGEST_BUFFER", format!("{}ull", sizes.iter().max().copied().unwrap_or(0))),
        ("GPU_INPUT_BYTES", format!("{}u", plan.input_floats * 4)),
        ("GPU_LOGITS_BYTES", format!("{}u", plan.logits_floats * 4)),
        ("GPU_SCORES_BYTES", format!("{}u", plan.scores_floats * 4)),
        ("GPU_LABELS_BYTES", format!("{}u", plan.labels)),
        ("WEIGHTS_BYTES", format!("{}u", model.weights.len() * 4)),
        ("GPU_ERROR_CHARS", ERROR_CHARS.to_string()),
        ("GPU_OK", "0".into()),
        ("GPU_E_NULL", "(-1)".into()),
        ("GPU_E_ADAPTER", "(-3)".into()),
        ("GPU_E_LIMITS", "(-4)".into()),
        ("GPU_E_DEVICE", "(-5)".into()),
        ("GPU_E_MAP", "(-6)".into()),
    ];
    for (name, value) in defines {
        w.line(format!("#define {u}_{name} {value}"));
    }
    w.line(format!(
        "#define {u}_WEIGHTS_FINGERPRINT \"{}\" /* spec + packing recipe + cgnetc version */",
        model.recipe.fingerprint
    ));
    w.blank();
    w.comment(&[
        format!("One program set up on a device. The host owns it (no malloc): {n}_gpu_init fills it,"),
        format!("{n}_gpu_destroy releases it. Its fields are private. One thread at a time per session;"),
        "sessions on one device are independent.".into(),
    ]);
    w.block(format!("typedef struct {n}_gpu {{"), &format!("}} {n}_gpu;"), |w| {
        w.line("WGPUInstance instance;");
        w.line("WGPUDevice device;");
        w.line("WGPUQueue queue;");
        w.line("WGPUBuffer buffers[8];");
        w.line("WGPUBindGroupLayout layout;");
        w.line("WGPUPipelineLayout pipeline_layout;");
        w.line("WGPUBindGroup bind_group;");
        w.line(format!("WGPUComputePipeline pipelines[{u}_GPU_KERNELS];"));
        w.line("size_t resources_created;");
        w.line(format!("char error[{u}_GPU_ERROR_CHARS];"));
    });
    w.blank();
    w.comment(&[
        "A device with the limits this program needs: the default adapter (a discrete GPU".into(),
        "first), storage bindings and buffers raised to GPU_LARGEST_BUFFER when that is above".into(),
        format!("WebGPU's defaults. Returns {u}_GPU_OK, {u}_GPU_E_ADAPTER (no adapter), {u}_GPU_E_LIMITS"),
        format!("(the adapter allows less) or {u}_GPU_E_DEVICE. Optional: any device whose limits cover"),
        format!("{u}_GPU_LARGEST_BUFFER will do."),
    ]);
    w.line(format!("int {n}_gpu_request_device(WGPUInstance instance, WGPUDevice *device);"));
    w.blank();
    w.comment(&[
        "Creates every buffer, pipeline and the bind group and uploads the weights; waits until".into(),
        "the device accepted them. `instance` is the one `device` came from (for waiting).".into(),
        format!("Both are referenced, not taken. Returns {u}_GPU_OK, {u}_GPU_E_NULL or {u}_GPU_E_DEVICE"),
        format!("({n}_gpu_error says why)."),
    ]);
    w.line(format!("int {n}_gpu_init({n}_gpu *gpu, WGPUInstance instance, WGPUDevice device{weights});"));
    w.blank();
    w.line(format!(
        "/* input: [1,3,{},{}] NCHW float, as PyTorch. segment reads back only the label bytes. */",
        model.height, model.width
    ));
    entry_point_declarations(&mut w, model, |entry, output| {
        format!("int {n}_gpu_{entry}({n}_gpu *gpu, const float *input, {output});")
    });
    w.blank();
    w.comment(&[
        format!(
            "picture: [{},{},3] interleaved 8-bit RGB, row-major, uploaded as bytes; the kernels",
            model.height, model.width
        ),
        format!("that read it normalise it, (byte - {u}_MEAN[c]) * (1 / {u}_STD[c]) in float."),
    ]);
    for (entry, output) in super::ENTRY_OUTPUTS {
        w.line(format!("int {n}_gpu_{entry}_rgb8({n}_gpu *gpu, const uint8_t *picture, {output});"));
    }
    w.blank();
    w.line("/* GPU resources (buffers, modules, layouts, pipelines, bind group) set-up created; an inference adds none. */");
    w.line(format!("size_t {n}_gpu_resources_created(const {n}_gpu *gpu);"));
    w.line("/* Why the last call failed (the implementation's message), or \"\". */");
    w.line(format!("const char *{n}_gpu_error(const {n}_gpu *gpu);"));
    w.line(format!("void {n}_gpu_destroy({n}_gpu *gpu);"));
    w.blank();
    close_header(&mut w, &guard);
    w.finish()
}

/// A C string literal of `line` (which holds no newline).
fn c_string(line: &str) -> String {
    format!("\"{}\"", line.replace('\\', "\\\\").replace('"', "\\\""))
}

fn source(model: &CompiledModel, options: &Options, plan: &GpuPlan) -> String {
    let (n, u) = (&model.name, upper(model));
    let sizes = buffers(plan, model.weights.len());
    let mut w = Writer::default();
    file_header(&mut w, model, options);
    w.line(format!("#include \"{n}_gpu.h\""));
    w.blank();
    if !options.weights_blob {
        w.line(format!("extern const float {n}_packed_weights[{}];", model.weights.len()));
        w.blank();
    }
    w.line("/* ---- The program: the body's kernels, the run, scores and segment tails, then the");
    w.line(" * kernels that read the input again, reading an 8-bit picture (replacing body kernels). */");
    // Each kernel's WGSL is an array of lines (C99 compilers need not accept a
    // string literal over 4095 characters); set-up joins them.
    let kernels: Vec<_> = plan
        .body
        .iter()
        .chain([&plan.run, &plan.scores, &plan.segment])
        .chain(plan.picture.iter().map(|(_, k)| k))
        .collect();
    for (i, k) in kernels.iter().enumerate() {
        w.block(format!("static const char *const cg_wgsl_{i}[] = {{"), "};", |w| {
            for line in k.wgsl.lines() {
                w.line(format!("{},", c_string(line)));
            }
            w.line("0");
        });
    }
    w.blank();
    w.line("typedef struct { const char *label; const char *const *wgsl; uint32_t workgroups[3]; } cg_kernel;");
    w.block(format!("static const cg_kernel cg_kernels[{u}_GPU_KERNELS] = {{"), "};", |w| {
        for (i, k) in kernels.iter().enumerate() {
            let [x, y, z] = k.workgroups;
            w.line(format!("{{\"{}\", cg_wgsl_{i}, {{{x}u, {y}u, {z}u}}}},", k.label));
        }
    });
    let replaces: Vec<String> = plan.picture.iter().map(|(i, _)| format!("{i}u")).collect();
    w.line(format!(
        "static const size_t cg_picture_replaces[{u}_GPU_PICTURE_KERNELS] = {{{}}}; /* body kernel each one replaces */",
        replaces.join(", ")
    ));
    let longest = kernels.iter().map(|k| k.wgsl.len() + 1).max().unwrap_or(1);
    w.line(format!("#define CG_WGSL_CHARS {longest} /* the longest kernel, terminator included */"));
    let sizes: Vec<String> = sizes.iter().map(|s| format!("{s}ull")).collect();
    w.line(format!("static const uint64_t cg_buffer_bytes[8] = {{{}}};", sizes.join(", ")));
    let read_only: Vec<&str> = BINDINGS.iter().map(|(_, access)| if *access == "read" { "1" } else { "0" }).collect();
    w.line(format!("static const int cg_read_only[{}] = {{{}}};", BINDINGS.len(), read_only.join(", ")));
    w.blank();
    let (param, null_check, expr) = if options.weights_blob {
        (", const float *weights", " || !weights", "weights".to_string())
    } else {
        ("", "", format!("{n}_packed_weights"))
    };
    w.raw(
        &include_str!("webgpu_host.c")
            .replace("cg_str(\"model\")", &format!("cg_str(\"{n}\")"))
            .replace(" WEIGHTS_PARAM", param)
            .replace(" WEIGHTS_NULL_CHECK", null_check)
            .replace("WEIGHTS_EXPR", &expr)
            .replace("MODEL_", &format!("{u}_"))
            .replace("model_", &format!("{n}_")),
    );
    w.finish()
}

fn cmake(model: &CompiledModel, options: &Options) -> String {
    let n = &model.name;
    let sources = if options.weights_blob { format!("{n}_gpu.c") } else { format!("{n}_gpu.c {n}_weights.c") };
    let mut w = Writer::default();
    w.line(format!("# {}", super::provenance(model).join("\n# ")));
    w.line("cmake_minimum_required(VERSION 3.10)");
    w.line(format!("project({n}_gpu C)"));
    w.line("# The webgpu.h implementation: its include folder (holding webgpu/webgpu.h) and library.");
    w.line("set(CGNET_WEBGPU_INCLUDE_DIR \"\" CACHE PATH \"folder that holds webgpu/webgpu.h\")");
    w.line("set(CGNET_WEBGPU_LIBRARY \"\" CACHE FILEPATH \"the webgpu.h implementation (wgpu-native, Dawn)\")");
    w.line(
        "option(CGNET_WGPU_NATIVE \"the implementation is wgpu-native (blocking waits through wgpuDevicePoll)\" OFF)",
    );
    w.line(format!("add_library({n}_gpu STATIC {sources})"));
    w.line(format!("target_include_directories({n}_gpu PUBLIC ${{CMAKE_CURRENT_SOURCE_DIR}})"));
    w.line(format!(
        "if(CGNET_WEBGPU_INCLUDE_DIR)\n  target_include_directories({n}_gpu PUBLIC ${{CGNET_WEBGPU_INCLUDE_DIR}})\nendif()"
    ));
    w.line(format!(
        "if(CGNET_WEBGPU_LIBRARY)\n  target_link_libraries({n}_gpu PUBLIC ${{CGNET_WEBGPU_LIBRARY}})\nendif()"
    ));
    w.line(format!("if(CGNET_WGPU_NATIVE)\n  target_compile_definitions({n}_gpu PRIVATE CGNET_WGPU_NATIVE)\nendif()"));
    w.line(format!("set_target_properties({n}_gpu PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON)"));
    w.finish()
}

fn usage(model: &CompiledModel, options: &Options) -> String {
    let (n, u) = (&model.name, upper(model));
    let sources = if options.weights_blob { format!("{n}_gpu.c") } else { format!("{n}_gpu.c {n}_weights.c") };
    let (weights_note, weights_arg) = if options.weights_blob {
        (
            format!(
                "Weights are in `{n}.weights` (raw little-endian float32): load it and pass it to `{n}_gpu_init`, \
                 which uploads it; it can be freed afterwards."
            ),
            ", weights",
        )
    } else {
        (format!("Weights are compiled in (`{n}_weights.c`) and uploaded by `{n}_gpu_init`."), "")
    };
    format!(
        "# {n}_gpu: CGNet on a GPU through webgpu.h, generated by cgnetc {version} (c-webgpu)\n\n\
         `{n}_gpu.c` embeds the program's {kernels} WGSL compute kernels and a host written against the \
         standard `webgpu.h` C API, which wgpu-native and Dawn implement (Vulkan and OpenGL ES on Android, \
         Metal on iOS and macOS, Vulkan / D3D12 on desktops).\n\n\
         ## Build\n\n\
         ```sh\ncc -std=c99 -O2 -I path/to/include -c {sources}   # path/to/include/webgpu/webgpu.h\n```\n\n\
         Link the program with the implementation (e.g. `libwgpu_native.so`, Dawn's `libwebgpu_dawn`). With \
         wgpu-native, also define `CGNET_WGPU_NATIVE` (and have `webgpu/wgpu.h` beside `webgpu.h`): waits then \
         block in `wgpuDevicePoll` instead of spinning on `wgpuInstanceProcessEvents`, which is what the standard \
         API offers where `wgpuInstanceWaitAny` cannot wait with a timeout (Dawn waits with one when the \
         instance was created with `WGPUInstanceFeatureName_TimedWaitAny`).\n\n\
         CMake: `add_subdirectory(path/to/{n} ${{CMAKE_BINARY_DIR}}/{n})` with `CGNET_WEBGPU_INCLUDE_DIR`, \
         `CGNET_WEBGPU_LIBRARY` and (for wgpu-native) `CGNET_WGPU_NATIVE=ON` set, then link `{n}_gpu`.\n\n\
         ## Use\n\n\
         ```c\n#include \"{n}_gpu.h\"\n\n\
         WGPUInstance instance = wgpuCreateInstance(NULL);\nWGPUDevice device;\n\
         {n}_gpu gpu;                                             /* the host owns it; no malloc */\n\
         if ({n}_gpu_request_device(instance, &device) != {u}_GPU_OK) {{ /* or the app's own device */ }}\n\
         if ({n}_gpu_init(&gpu, instance, device{weights_arg}) != {u}_GPU_OK) puts({n}_gpu_error(&gpu));\n\
         {n}_gpu_segment(&gpu, input, labels);                     /* as often as needed */\n\
         {n}_gpu_destroy(&gpu);\n```\n\n\
         Set-up creates every GPU resource ({n}_gpu_resources_created says how many); an inference creates \
         none: it maps the upload buffer and copies the input in, records the fixed dispatch list in one \
         compute pass, submits once and reads back once (`segment` reads back only the label bytes).\n\n\
         Input: `float` [1, 3, {h}, {w}], NCHW, as PyTorch, normalised as the weights were trained (the \
         bundled CamVid weights: pixel values 0..255 minus R 105.65775, G 103.329834, B 99.625404). \
         Outputs: `{n}_gpu_run` (logits [1, {c}, {lh}, {lw}]), `{n}_gpu_scores` (upsampled scores \
         [1, {c}, {h}, {w}]), `{n}_gpu_segment` (one byte per pixel). `{n}_gpu_run_rgb8`, \
         `{n}_gpu_scores_rgb8` and `{n}_gpu_segment_rgb8` take a picture instead: interleaved 8-bit RGB \
         [{h}, {w}, 3], uploaded as bytes (a quarter of the float input) and normalised by the kernels that \
         read it with `{u}_MEAN` / `{u}_STD`. Each returns `{u}_GPU_OK` or a negative \
         `{u}_GPU_E_*` code, with `{n}_gpu_error` saying why.\n\n\
         The device needs storage bindings and buffers of `{u}_GPU_LARGEST_BUFFER` bytes; \
         `{n}_gpu_request_device` asks for exactly that above WebGPU's defaults.\n\n\
         ## Weights\n\n{weights_note}\n",
        version = env!("CARGO_PKG_VERSION"),
        kernels = model.steps.len() + 3 + model.steps.iter().filter(|s| s.reading_rgb8().is_some()).count(),
        h = model.height,
        w = model.width,
        c = model.classes,
        lh = model.logits.h,
        lw = model.logits.w,
    )
}
