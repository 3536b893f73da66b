/* cgnetc's test and benchmark harness for emitted C (not part of the emitted library).
 * usage: harness DIR THREADS ITERS
 * Reads DIR/picture.bin (8-bit RGB, run through the `_rgb8` entry points) or else
 * DIR/input.bin (and DIR/MODEL.weights in blob mode); writes DIR/logits.bin,
 * DIR/scores.bin, DIR/labels.bin; with ITERS > 0 also prints the median ms of ITERS
 * timed `run` calls. Follows harness_io.c, which includes cgnet_pthread_pool.h and MODEL.h. */

/* One entry point on the harness's input: the picture's `_rgb8` variant when there is one. */
#define ENTRY(entry, out)                                                                        \
    (io.picture ? model_##entry##_rgb8_parallel(WEIGHTS_ARG io.picture, out, arena, &pf)        \
                : model_##entry##_parallel(WEIGHTS_ARG io.input, out, arena, &pf))

static void check(int status, const char *what) {
    if (status != 0) {
        fprintf(stderr, "harness: %s returned %d\n", what, status);
        exit(3);
    }
}

int main(int argc, char **argv) {
    size_t i;
    void *arena = 0;
    cgnet_pool pool;
    model_parallel_for pf;
    harness_io io;
    WEIGHTS_DECL
    harness_open(&io, argc, argv);
    WEIGHTS_LOAD
    if (posix_memalign(&arena, 64, model_arena_bytes()) != 0) return 2;
    if (cgnet_pool_init(&pool, io.threads) != 0) return 2;
    pf.ctx = &pool;
    pf.threads = cgnet_pool_threads(&pool);
    pf.run = cgnet_pool_run;
    check(ENTRY(run, io.logits), "run");
    check(ENTRY(scores, io.scores), "scores");
    check(ENTRY(segment, io.labels), "segment");
    harness_write(&io);
    if (io.iters > 0) {
        double *ms = (double *)malloc(io.iters * sizeof(double));
        for (i = 0; i < io.iters + 2; i++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            check(ENTRY(run, io.logits), "run");
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (i >= 2) ms[i - 2] = elapsed_ms(&t0, &t1);
        }
        print_times(ms, io.iters);
        free(ms);
    }
    cgnet_pool_destroy(&pool);
    WEIGHTS_FREE
    free(arena);
    harness_close(&io);
    return 0;
}
