/* cgnetc's test and benchmark harness for emitted C (not part of the emitted library).
 * usage: harness DIR THREADS ITERS
 * Reads DIR/input.bin (and DIR/MODEL.weights in blob mode); writes DIR/logits.bin,
 * DIR/scores.bin, DIR/labels.bin; with ITERS > 0 also prints the median ms of ITERS
 * timed `run` calls. */
#define _POSIX_C_SOURCE 200112L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cgnet_pthread_pool.h"
#include "MODEL.h"

static void *read_file(const char *dir, const char *name, size_t bytes) {
    char path[4096];
    void *buf = 0;
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f || posix_memalign(&buf, 64, bytes ? bytes : 64) != 0 || fread(buf, 1, bytes, f) != bytes) {
        fprintf(stderr, "harness: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    return buf;
}

static void write_file(const char *dir, const char *name, const void *data, size_t bytes) {
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "harness: cannot write %s\n", path);
        exit(2);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void check(int status, const char *what) {
    if (status != 0) {
        fprintf(stderr, "harness: %s returned %d\n", what, status);
        exit(3);
    }
}

int main(int argc, char **argv) {
    const size_t in_n = 3u * MODEL_INPUT_HEIGHT * MODEL_INPUT_WIDTH;
    const size_t logits_n = (size_t)MODEL_CLASSES * MODEL_LOGITS_HEIGHT * MODEL_LOGITS_WIDTH;
    const size_t pixels = (size_t)MODEL_INPUT_HEIGHT * MODEL_INPUT_WIDTH;
    size_t threads, iters, i;
    float *input, *logits, *scores;
    unsigned char *labels;
    void *arena = 0;
    cgnet_pool pool;
    model_parallel_for pf;
    WEIGHTS_DECL
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR THREADS ITERS\n", argv[0]);
        return 1;
    }
    threads = (size_t)atoi(argv[2]);
    iters = (size_t)atoi(argv[3]);
    input = (float *)read_file(argv[1], "input.bin", in_n * sizeof(float));
    WEIGHTS_LOAD
    logits = (float *)malloc(logits_n * sizeof(float));
    scores = (float *)malloc((size_t)MODEL_CLASSES * pixels * sizeof(float));
    labels = (unsigned char *)malloc(pixels);
    if (!logits || !scores || !labels || posix_memalign(&arena, 64, model_arena_bytes()) != 0) return 2;
    if (cgnet_pool_init(&pool, threads) != 0) return 2;
    pf.ctx = &pool;
    pf.threads = cgnet_pool_threads(&pool);
    pf.run = cgnet_pool_run;
    check(model_run_parallel(WEIGHTS_ARG input, logits, arena, &pf), "run");
    check(model_scores_parallel(WEIGHTS_ARG input, scores, arena, &pf), "scores");
    check(model_segment_parallel(WEIGHTS_ARG input, labels, arena, &pf), "segment");
    write_file(argv[1], "logits.bin", logits, logits_n * sizeof(float));
    write_file(argv[1], "scores.bin", scores, (size_t)MODEL_CLASSES * pixels * sizeof(float));
    write_file(argv[1], "labels.bin", labels, pixels);
    if (iters > 0) {
        double *ms = (double *)malloc(iters * sizeof(double));
        for (i = 0; i < iters + 2; i++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            check(model_run_parallel(WEIGHTS_ARG input, logits, arena, &pf), "run");
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (i >= 2) ms[i - 2] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        }
        qsort(ms, iters, sizeof(double), cmp_double);
        printf("median_ms %.3f min_ms %.3f max_ms %.3f\n", ms[iters / 2], ms[0], ms[iters - 1]);
        free(ms);
    }
    cgnet_pool_destroy(&pool);
    WEIGHTS_FREE
    free(arena);
    free(labels);
    free(scores);
    free(logits);
    free(input);
    return 0;
}
