/* cgnetc's test and benchmark harness for the c-webgpu host (not part of the
 * emitted library). usage: harness DIR THREADS ITERS (THREADS is ignored).
 * Creates a WebGPU instance and device (model_gpu_request_device), sets the
 * program up once, then the same exchange as harness.c; also prints how many
 * GPU resources set-up created and fails if an inference created any.
 * Follows harness_io.c, which includes MODEL_gpu.h. */

/* One entry point on the harness's input: the picture's `_rgb8` variant when there is one. */
#define ENTRY(entry, out) \
    (io.picture ? model_gpu_##entry##_rgb8(&gpu, io.picture, out) : model_gpu_##entry(&gpu, io.input, out))

static void check_gpu(int status, const model_gpu *gpu, const char *what) {
    if (status != MODEL_GPU_OK) {
        fprintf(stderr, "harness: %s returned %d: %s\n", what, status, model_gpu_error(gpu));
        exit(3);
    }
}

int main(int argc, char **argv) {
    size_t i, created;
    WGPUInstance instance;
    WGPUDevice device;
    model_gpu gpu;
    harness_io io;
    int status;
    WEIGHTS_DECL
    harness_open(&io, argc, argv);
    WEIGHTS_LOAD
    instance = wgpuCreateInstance(NULL);
    if (!instance) {
        fprintf(stderr, "harness: no WebGPU instance\n");
        return 3;
    }
    status = model_gpu_request_device(instance, &device);
    if (status != MODEL_GPU_OK) {
        fprintf(stderr, "harness: model_gpu_request_device returned %d%s\n", status,
                status == MODEL_GPU_E_ADAPTER ? " (no GPU adapter)" : "");
        return 3;
    }
    check_gpu(model_gpu_init(&gpu, instance, device WEIGHTS_COMMA_ARG), &gpu, "init");
    created = model_gpu_resources_created(&gpu);
    check_gpu(ENTRY(run, io.logits), &gpu, "run");
    check_gpu(ENTRY(scores, io.scores), &gpu, "scores");
    check_gpu(ENTRY(segment, io.labels), &gpu, "segment");
    harness_write(&io);
    if (io.iters > 0) {
        double *ms = (double *)malloc(io.iters * sizeof(double));
        for (i = 0; i < io.iters + 2; i++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            check_gpu(ENTRY(run, io.logits), &gpu, "run");
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (i >= 2) ms[i - 2] = elapsed_ms(&t0, &t1);
        }
        print_times(ms, io.iters);
        free(ms);
    }
    printf("gpu_resources %lu\n", (unsigned long)created);
    if (model_gpu_resources_created(&gpu) != created) {
        fprintf(stderr, "harness: inferences created %lu GPU resources\n",
                (unsigned long)(model_gpu_resources_created(&gpu) - created));
        return 4;
    }
    model_gpu_destroy(&gpu);
    wgpuDeviceRelease(device);
    wgpuInstanceRelease(instance);
    WEIGHTS_FREE
    harness_close(&io);
    return 0;
}
