/* ---- The host: standard webgpu.h calls only (wgpu-native, Dawn). Set-up
 * creates every GPU resource once; an inference creates none (its command
 * encoder, pass and command buffer are transient recording objects). */

#include <string.h>

#if defined(CGNET_WGPU_NATIVE)
/* wgpu-native's blocking poll (`wgpuDevicePoll`) waits without spinning. */
#include <webgpu/wgpu.h>
#endif

static void cg_release(model_gpu *g);

enum { CG_ARENA, CG_WEIGHTS, CG_INPUT, CG_LOGITS, CG_SCORES, CG_LABELS, CG_UPLOAD, CG_READBACK };

static WGPUStringView cg_str(const char *s) {
    WGPUStringView v;
    v.data = s;
    v.length = WGPU_STRLEN;
    return v;
}

/* Copies an implementation's message into the error text. */
static void cg_set_error(char *error, const char *what, WGPUStringView message) {
    size_t n = strlen(what), room = MODEL_GPU_ERROR_CHARS - 1;
    if (n > room) n = room;
    memcpy(error, what, n);
    if (message.data && n + 2 < room) {
        size_t m = message.length == WGPU_STRLEN ? strlen(message.data) : message.length;
        error[n++] = ':';
        error[n++] = ' ';
        if (m > room - n) m = room - n;
        memcpy(error + n, message.data, m);
        n += m;
    }
    error[n] = 0;
}

/* Waits until the callback of `future` has set `*done` (callbacks are registered
 * with WGPUCallbackMode_AllowProcessEvents, which both ways below fire). By
 * default by processing events, which every implementation offers but which
 * spins; define CGNET_WGPU_NATIVE (wgpu-native: a blocking wgpuDevicePoll) or
 * CGNET_WEBGPU_TIMED_WAIT (an instance created with the TimedWaitAny feature,
 * e.g. Dawn's) to block instead. */
static void cg_wait(WGPUInstance instance, WGPUDevice device, WGPUFuture future, volatile int *done) {
#if defined(CGNET_WGPU_NATIVE)
    (void)future;
    while (!*done) {
        if (device) wgpuDevicePoll(device, 1, NULL);
        wgpuInstanceProcessEvents(instance);
    }
#elif defined(CGNET_WEBGPU_TIMED_WAIT)
    WGPUFutureWaitInfo info;
    (void)device;
    info.future = future;
    info.completed = 0;
    if (!*done) wgpuInstanceWaitAny(instance, 1, &info, UINT64_MAX);
    while (!*done) wgpuInstanceProcessEvents(instance);
#else
    (void)device;
    (void)future;
    while (!*done) wgpuInstanceProcessEvents(instance);
#endif
}

typedef struct {
    volatile int done;
    int ok;
    void *handle;
    char *error;
} cg_result;

static void cg_adapter_ready(WGPURequestAdapterStatus status, WGPUAdapter adapter, WGPUStringView message,
                             void *userdata1, void *userdata2) {
    cg_result *r = (cg_result *)userdata1;
    (void)userdata2;
    r->ok = status == WGPURequestAdapterStatus_Success && adapter;
    r->handle = adapter;
    if (!r->ok) cg_set_error(r->error, "no GPU adapter", message);
    r->done = 1;
}

static void cg_device_ready(WGPURequestDeviceStatus status, WGPUDevice device, WGPUStringView message,
                            void *userdata1, void *userdata2) {
    cg_result *r = (cg_result *)userdata1;
    (void)userdata2;
    r->ok = status == WGPURequestDeviceStatus_Success && device;
    r->handle = device;
    if (!r->ok) cg_set_error(r->error, "the GPU device could not be created", message);
    r->done = 1;
}

static void cg_scope_popped(WGPUPopErrorScopeStatus status, WGPUErrorType type, WGPUStringView message,
                            void *userdata1, void *userdata2) {
    cg_result *r = (cg_result *)userdata1;
    (void)userdata2;
    r->ok = status == WGPUPopErrorScopeStatus_Success && type == WGPUErrorType_NoError;
    if (!r->ok && !r->error[0]) cg_set_error(r->error, "the GPU rejected the program", message);
    r->done = 1;
}

static void cg_mapped(WGPUMapAsyncStatus status, WGPUStringView message, void *userdata1, void *userdata2) {
    cg_result *r = (cg_result *)userdata1;
    (void)userdata2;
    r->ok = status == WGPUMapAsyncStatus_Success;
    if (!r->ok) cg_set_error(r->error, "mapping a buffer failed", message);
    r->done = 1;
}

/* Set-up runs inside error scopes and an inference's failures surface as a failed
 * map, so errors outside a scope (none is expected) are dropped here rather than
 * left to the implementation's default handler. */
static void cg_uncaptured(WGPUDevice const *device, WGPUErrorType type, WGPUStringView message, void *userdata1,
                          void *userdata2) {
    (void)device;
    (void)type;
    (void)message;
    (void)userdata1;
    (void)userdata2;
}

int model_gpu_request_device(WGPUInstance instance, WGPUDevice *device) {
    char error[MODEL_GPU_ERROR_CHARS] = {0};
    cg_result r;
    WGPURequestAdapterOptions options = WGPU_REQUEST_ADAPTER_OPTIONS_INIT;
    WGPURequestAdapterCallbackInfo adapter_info = WGPU_REQUEST_ADAPTER_CALLBACK_INFO_INIT;
    WGPURequestDeviceCallbackInfo device_info = WGPU_REQUEST_DEVICE_CALLBACK_INFO_INIT;
    WGPUDeviceDescriptor descriptor = WGPU_DEVICE_DESCRIPTOR_INIT;
    WGPULimits allowed = WGPU_LIMITS_INIT, required = WGPU_LIMITS_INIT;
    WGPUAdapter adapter;
    if (!instance || !device) return MODEL_GPU_E_NULL;
    *device = NULL;
    memset(&r, 0, sizeof r);
    r.error = error;
    options.powerPreference = WGPUPowerPreference_HighPerformance;
    adapter_info.mode = WGPUCallbackMode_AllowProcessEvents;
    adapter_info.callback = cg_adapter_ready;
    adapter_info.userdata1 = &r;
    cg_wait(instance, NULL, wgpuInstanceRequestAdapter(instance, &options, adapter_info), &r.done);
    if (!r.ok) return MODEL_GPU_E_ADAPTER;
    adapter = (WGPUAdapter)r.handle;
    if (wgpuAdapterGetLimits(adapter, &allowed) != WGPUStatus_Success
        || allowed.maxStorageBufferBindingSize < MODEL_GPU_LARGEST_BUFFER
        || allowed.maxBufferSize < MODEL_GPU_LARGEST_BUFFER) {
        wgpuAdapterRelease(adapter);
        return MODEL_GPU_E_LIMITS;
    }
    /* Ask for what the program needs above WebGPU's defaults, no more. */
    if (MODEL_GPU_LARGEST_BUFFER > (uint64_t)134217728u) required.maxStorageBufferBindingSize = MODEL_GPU_LARGEST_BUFFER;
    if (MODEL_GPU_LARGEST_BUFFER > (uint64_t)268435456u) required.maxBufferSize = MODEL_GPU_LARGEST_BUFFER;
    descriptor.label = cg_str("model");
    descriptor.requiredLimits = &required;
    descriptor.uncapturedErrorCallbackInfo.callback = cg_uncaptured;
    memset(&r, 0, sizeof r);
    r.error = error;
    device_info.mode = WGPUCallbackMode_AllowProcessEvents;
    device_info.callback = cg_device_ready;
    device_info.userdata1 = &r;
    cg_wait(instance, NULL, wgpuAdapterRequestDevice(adapter, &descriptor, device_info), &r.done);
    wgpuAdapterRelease(adapter);
    if (!r.ok) return MODEL_GPU_E_DEVICE;
    *device = (WGPUDevice)r.handle;
    return MODEL_GPU_OK;
}

/* Pops the two error scopes pushed by the caller (out of memory, then validation). */
static int cg_pop_scopes(model_gpu *g) {
    int i, ok = 1;
    for (i = 0; i < 2; i++) {
        cg_result r;
        WGPUPopErrorScopeCallbackInfo info = WGPU_POP_ERROR_SCOPE_CALLBACK_INFO_INIT;
        memset(&r, 0, sizeof r);
        r.error = g->error;
        info.mode = WGPUCallbackMode_AllowProcessEvents;
        info.callback = cg_scope_popped;
        info.userdata1 = &r;
        cg_wait(g->instance, g->device, wgpuDevicePopErrorScope(g->device, info), &r.done);
        ok &= r.ok;
    }
    return ok ? MODEL_GPU_OK : MODEL_GPU_E_DEVICE;
}

static WGPUBuffer cg_buffer(model_gpu *g, const char *label, uint64_t size, WGPUBufferUsage usage) {
    WGPUBufferDescriptor d = WGPU_BUFFER_DESCRIPTOR_INIT;
    d.label = cg_str(label);
    d.size = size;
    d.usage = usage;
    g->resources_created++;
    return wgpuDeviceCreateBuffer(g->device, &d);
}

int model_gpu_init(model_gpu *g, WGPUInstance instance, WGPUDevice device WEIGHTS_PARAM) {
    static const char *const names[8] = {"arena", "weights", "input", "logits", "scores", "labels", "upload", "readback"};
    const WGPUBufferUsage storage = WGPUBufferUsage_Storage | WGPUBufferUsage_CopyDst | WGPUBufferUsage_CopySrc;
    WGPUBindGroupLayoutEntry layout_entries[7];
    WGPUBindGroupEntry group_entries[7];
    WGPUBindGroupLayoutDescriptor layout = WGPU_BIND_GROUP_LAYOUT_DESCRIPTOR_INIT;
    WGPUPipelineLayoutDescriptor pipeline_layout = WGPU_PIPELINE_LAYOUT_DESCRIPTOR_INIT;
    WGPUBindGroupDescriptor group = WGPU_BIND_GROUP_DESCRIPTOR_INIT;
    size_t i;
    if (!g) return MODEL_GPU_E_NULL;
    memset(g, 0, sizeof *g);
    if (!instance || !device WEIGHTS_NULL_CHECK) return MODEL_GPU_E_NULL;
    wgpuInstanceAddRef(instance);
    wgpuDeviceAddRef(device);
    g->instance = instance;
    g->device = device;
    g->queue = wgpuDeviceGetQueue(device);
    wgpuDevicePushErrorScope(device, WGPUErrorFilter_Validation);
    wgpuDevicePushErrorScope(device, WGPUErrorFilter_OutOfMemory);
    for (i = 0; i < 6; i++) g->buffers[i] = cg_buffer(g, names[i], cg_buffer_bytes[i], storage);
    g->buffers[CG_UPLOAD] =
        cg_buffer(g, names[CG_UPLOAD], cg_buffer_bytes[CG_UPLOAD], WGPUBufferUsage_MapWrite | WGPUBufferUsage_CopySrc);
    g->buffers[CG_READBACK] = cg_buffer(g, names[CG_READBACK], cg_buffer_bytes[CG_READBACK],
                                        WGPUBufferUsage_MapRead | WGPUBufferUsage_CopyDst);
    for (i = 0; i < 8; i++) {
        if (!g->buffers[i]) {
            cg_set_error(g->error, "a buffer could not be created", cg_str(names[i]));
            cg_pop_scopes(g);
            cg_release(g);
            return MODEL_GPU_E_DEVICE;
        }
    }
    wgpuQueueWriteBuffer(g->queue, g->buffers[CG_WEIGHTS], 0, WEIGHTS_EXPR, MODEL_WEIGHTS_BYTES);

    /* One bind group for every kernel: the buffers in the order of the WGSL bindings. */
    for (i = 0; i < 7; i++) {
        static const int bound[7] = {CG_ARENA, CG_WEIGHTS, CG_WEIGHTS, CG_INPUT, CG_LOGITS, CG_SCORES, CG_LABELS};
        WGPUBindGroupLayoutEntry e = WGPU_BIND_GROUP_LAYOUT_ENTRY_INIT;
        WGPUBindGroupEntry b = WGPU_BIND_GROUP_ENTRY_INIT;
        e.binding = (uint32_t)i;
        e.visibility = WGPUShaderStage_Compute;
        e.buffer.type = cg_read_only[i] ? WGPUBufferBindingType_ReadOnlyStorage : WGPUBufferBindingType_Storage;
        layout_entries[i] = e;
        b.binding = (uint32_t)i;
        b.buffer = g->buffers[bound[i]];
        b.offset = 0;
        b.size = cg_buffer_bytes[bound[i]];
        group_entries[i] = b;
    }
    layout.label = cg_str("model");
    layout.entryCount = 7;
    layout.entries = layout_entries;
    g->layout = wgpuDeviceCreateBindGroupLayout(device, &layout);
    pipeline_layout.label = cg_str("model");
    pipeline_layout.bindGroupLayoutCount = 1;
    pipeline_layout.bindGroupLayouts = &g->layout;
    g->pipeline_layout = wgpuDeviceCreatePipelineLayout(device, &pipeline_layout);
    group.label = cg_str("model");
    group.layout = g->layout;
    group.entryCount = 7;
    group.entries = group_entries;
    g->bind_group = wgpuDeviceCreateBindGroup(device, &group);
    g->resources_created += 3;

    for (i = 0; i < MODEL_GPU_KERNELS; i++) {
        char wgsl[CG_WGSL_CHARS];
        size_t length = 0, line;
        WGPUShaderSourceWGSL source = WGPU_SHADER_SOURCE_WGSL_INIT;
        WGPUShaderModuleDescriptor module = WGPU_SHADER_MODULE_DESCRIPTOR_INIT;
        WGPUComputePipelineDescriptor pipeline = WGPU_COMPUTE_PIPELINE_DESCRIPTOR_INIT;
        WGPUShaderModule shader;
        for (line = 0; cg_kernels[i].wgsl[line]; line++) {
            size_t n = strlen(cg_kernels[i].wgsl[line]);
            memcpy(wgsl + length, cg_kernels[i].wgsl[line], n);
            length += n;
            wgsl[length++] = '\n';
        }
        source.code.data = wgsl;
        source.code.length = length;
        module.nextInChain = &source.chain;
        module.label = cg_str(cg_kernels[i].label);
        shader = wgpuDeviceCreateShaderModule(device, &module);
        pipeline.label = cg_str(cg_kernels[i].label);
        pipeline.layout = g->pipeline_layout;
        pipeline.compute.module = shader;
        pipeline.compute.entryPoint = cg_str("main");
        g->pipelines[i] = wgpuDeviceCreateComputePipeline(device, &pipeline);
        if (shader) wgpuShaderModuleRelease(shader);
        g->resources_created += 2;
    }
    if (cg_pop_scopes(g) != MODEL_GPU_OK) {
        cg_release(g);
        return MODEL_GPU_E_DEVICE;
    }
    return MODEL_GPU_OK;
}

/* Maps `size` bytes of `buffer` and waits (after the submitted work) until they are. */
static int cg_map(model_gpu *g, WGPUBuffer buffer, WGPUMapMode mode, size_t size) {
    cg_result r;
    WGPUBufferMapCallbackInfo info = WGPU_BUFFER_MAP_CALLBACK_INFO_INIT;
    memset(&r, 0, sizeof r);
    r.error = g->error;
    info.mode = WGPUCallbackMode_AllowProcessEvents;
    info.callback = cg_mapped;
    info.userdata1 = &r;
    cg_wait(g->instance, g->device, wgpuBufferMapAsync(buffer, mode, 0, size, info), &r.done);
    return r.ok ? MODEL_GPU_OK : MODEL_GPU_E_MAP;
}

/* Body kernel i of an inference: for a picture, the kernels reading the input
 * are replaced by their twins reading the picture's bytes. */
static size_t cg_body_kernel(size_t i, int picture) {
    size_t j;
    if (picture)
        for (j = 0; j < MODEL_GPU_PICTURE_KERNELS; j++)
            if (cg_picture_replaces[j] == i) return MODEL_GPU_BODY_KERNELS + 3 + j;
    return i;
}

/* One inference: upload (the float input, or a picture's bytes, in whole words),
 * the body's kernels and one tail in one compute pass, the tail's output copied
 * to the read-back buffer, one submit, one read-back. */
static int cg_infer(model_gpu *g, const void *input, int picture, size_t tail, int output, void *out, size_t out_bytes) {
    const size_t input_bytes = picture ? MODEL_GPU_INPUT_BYTES / 4u : MODEL_GPU_INPUT_BYTES;
    const size_t copy_bytes = (out_bytes + 3u) / 4u * 4u;
    WGPUCommandEncoderDescriptor encoder_descriptor = WGPU_COMMAND_ENCODER_DESCRIPTOR_INIT;
    WGPUComputePassDescriptor pass_descriptor = WGPU_COMPUTE_PASS_DESCRIPTOR_INIT;
    WGPUCommandBufferDescriptor commands_descriptor = WGPU_COMMAND_BUFFER_DESCRIPTOR_INIT;
    WGPUCommandEncoder encoder;
    WGPUComputePassEncoder pass;
    WGPUCommandBuffer commands;
    void *upload;
    const void *result;
    size_t i;
    int status;
    if (!g || !input || !out) return MODEL_GPU_E_NULL;
    if (!g->bind_group) return MODEL_GPU_E_DEVICE;
    status = cg_map(g, g->buffers[CG_UPLOAD], WGPUMapMode_Write, (size_t)cg_buffer_bytes[CG_UPLOAD]);
    if (status != MODEL_GPU_OK) return status;
    upload = wgpuBufferGetMappedRange(g->buffers[CG_UPLOAD], 0, (size_t)cg_buffer_bytes[CG_UPLOAD]);
    if (!upload) {
        wgpuBufferUnmap(g->buffers[CG_UPLOAD]);
        return MODEL_GPU_E_MAP;
    }
    memcpy(upload, input, input_bytes);
    memset((unsigned char *)upload + input_bytes, 0, (input_bytes + 3u) / 4u * 4u - input_bytes);
    wgpuBufferUnmap(g->buffers[CG_UPLOAD]);

    encoder_descriptor.label = cg_str("model");
    encoder = wgpuDeviceCreateCommandEncoder(g->device, &encoder_descriptor);
    wgpuCommandEncoderCopyBufferToBuffer(encoder, g->buffers[CG_UPLOAD], 0, g->buffers[CG_INPUT], 0,
                                         cg_buffer_bytes[CG_UPLOAD]);
    pass_descriptor.label = cg_str("model");
    pass = wgpuCommandEncoderBeginComputePass(encoder, &pass_descriptor);
    wgpuComputePassEncoderSetBindGroup(pass, 0, g->bind_group, 0, NULL);
    for (i = 0; i <= MODEL_GPU_BODY_KERNELS; i++) {
        const size_t k = i < MODEL_GPU_BODY_KERNELS ? cg_body_kernel(i, picture) : tail;
        wgpuComputePassEncoderSetPipeline(pass, g->pipelines[k]);
        wgpuComputePassEncoderDispatchWorkgroups(pass, cg_kernels[k].workgroups[0], cg_kernels[k].workgroups[1],
                                                 cg_kernels[k].workgroups[2]);
    }
    wgpuComputePassEncoderEnd(pass);
    wgpuComputePassEncoderRelease(pass);
    wgpuCommandEncoderCopyBufferToBuffer(encoder, g->buffers[output], 0, g->buffers[CG_READBACK], 0, copy_bytes);
    commands_descriptor.label = cg_str("model");
    commands = wgpuCommandEncoderFinish(encoder, &commands_descriptor);
    wgpuCommandEncoderRelease(encoder);
    wgpuQueueSubmit(g->queue, 1, &commands);
    wgpuCommandBufferRelease(commands);

    status = cg_map(g, g->buffers[CG_READBACK], WGPUMapMode_Read, copy_bytes);
    if (status != MODEL_GPU_OK) return status;
    result = wgpuBufferGetConstMappedRange(g->buffers[CG_READBACK], 0, copy_bytes);
    if (result) memcpy(out, result, out_bytes);
    wgpuBufferUnmap(g->buffers[CG_READBACK]);
    return result ? MODEL_GPU_OK : MODEL_GPU_E_MAP;
}

int model_gpu_run(model_gpu *g, const float *input, float *logits) {
    return cg_infer(g, input, 0, MODEL_GPU_BODY_KERNELS, CG_LOGITS, logits, MODEL_GPU_LOGITS_BYTES);
}

int model_gpu_scores(model_gpu *g, const float *input, float *scores) {
    return cg_infer(g, input, 0, MODEL_GPU_BODY_KERNELS + 1, CG_SCORES, scores, MODEL_GPU_SCORES_BYTES);
}

int model_gpu_segment(model_gpu *g, const float *input, uint8_t *labels) {
    return cg_infer(g, input, 0, MODEL_GPU_BODY_KERNELS + 2, CG_LABELS, labels, MODEL_GPU_LABELS_BYTES);
}

int model_gpu_run_rgb8(model_gpu *g, const uint8_t *picture, float *logits) {
    return cg_infer(g, picture, 1, MODEL_GPU_BODY_KERNELS, CG_LOGITS, logits, MODEL_GPU_LOGITS_BYTES);
}

int model_gpu_scores_rgb8(model_gpu *g, const uint8_t *picture, float *scores) {
    return cg_infer(g, picture, 1, MODEL_GPU_BODY_KERNELS + 1, CG_SCORES, scores, MODEL_GPU_SCORES_BYTES);
}

int model_gpu_segment_rgb8(model_gpu *g, const uint8_t *picture, uint8_t *labels) {
    return cg_infer(g, picture, 1, MODEL_GPU_BODY_KERNELS + 2, CG_LABELS, labels, MODEL_GPU_LABELS_BYTES);
}

size_t model_gpu_resources_created(const model_gpu *g) {
    return g ? g->resources_created : 0;
}

const char *model_gpu_error(const model_gpu *g) {
    return g ? g->error : "";
}

/* Releases every handle (the error text stays). */
static void cg_release(model_gpu *g) {
    size_t i;
    for (i = 0; i < MODEL_GPU_KERNELS; i++)
        if (g->pipelines[i]) wgpuComputePipelineRelease(g->pipelines[i]);
    if (g->bind_group) wgpuBindGroupRelease(g->bind_group);
    if (g->pipeline_layout) wgpuPipelineLayoutRelease(g->pipeline_layout);
    if (g->layout) wgpuBindGroupLayoutRelease(g->layout);
    for (i = 0; i < 8; i++) {
        if (g->buffers[i]) {
            wgpuBufferDestroy(g->buffers[i]);
            wgpuBufferRelease(g->buffers[i]);
        }
    }
    if (g->queue) wgpuQueueRelease(g->queue);
    if (g->device) wgpuDeviceRelease(g->device);
    if (g->instance) wgpuInstanceRelease(g->instance);
    memset(g->buffers, 0, sizeof g->buffers);
    memset(g->pipelines, 0, sizeof g->pipelines);
    g->instance = NULL;
    g->device = NULL;
    g->queue = NULL;
    g->layout = NULL;
    g->pipeline_layout = NULL;
    g->bind_group = NULL;
}

void model_gpu_destroy(model_gpu *g) {
    if (!g) return;
    cg_release(g);
    memset(g, 0, sizeof *g);
}
