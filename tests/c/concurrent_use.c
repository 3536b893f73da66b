/* One emitted model used by 8 threads at once, each with its own arena, 50
 * inferences each on 16 different inputs: every result must be bit-identical to
 * the serial one. usage: concurrent_use DIR (reads DIR/MODEL.weights).
 * MODEL / model_ are replaced by the model's names. */
#define _POSIX_C_SOURCE 200112L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "MODEL.h"

#define THREADS 8
#define INFERENCES 50
#define INPUTS 16
#define IN_N (3u * MODEL_INPUT_HEIGHT * MODEL_INPUT_WIDTH)
#define LOGITS_N ((size_t)MODEL_CLASSES * MODEL_LOGITS_HEIGHT * MODEL_LOGITS_WIDTH)

static float *weights;
static float *inputs[INPUTS];
static float *expected[INPUTS];

static void *run_thread(void *arg) {
    const size_t t = (size_t)(uintptr_t)arg;
    void *arena = 0;
    float *logits = (float *)malloc(LOGITS_N * sizeof(float));
    size_t k;
    if (!logits || posix_memalign(&arena, MODEL_ARENA_ALIGN, MODEL_ARENA_BYTES) != 0) return (void *)1;
    for (k = 0; k < INFERENCES; k++) {
        const size_t i = (t * 5 + k) % INPUTS;
        if (model_run(weights, inputs[i], logits, arena) != 0 || memcmp(logits, expected[i], LOGITS_N * sizeof(float)) != 0) {
            fprintf(stderr, "thread %lu, inference %lu (input %lu) differs from the serial result\n", (unsigned long)t,
                    (unsigned long)k, (unsigned long)i);
            return (void *)1;
        }
    }
    free(arena);
    free(logits);
    return (void *)0;
}

int main(int argc, char **argv) {
    char path[4096];
    FILE *f;
    void *arena = 0;
    pthread_t threads[THREADS];
    struct timespec t0, t1;
    size_t i, j, failed = 0;
    if (argc != 2) return 1;
    snprintf(path, sizeof path, "%s/MODEL_LOWER.weights", argv[1]);
    weights = (float *)malloc(MODEL_WEIGHTS_BYTES);
    f = fopen(path, "rb");
    if (!weights || !f || fread(weights, 1, MODEL_WEIGHTS_BYTES, f) != MODEL_WEIGHTS_BYTES) return 2;
    fclose(f);
    if (posix_memalign(&arena, MODEL_ARENA_ALIGN, MODEL_ARENA_BYTES) != 0) return 2;
    for (i = 0; i < INPUTS; i++) {
        inputs[i] = (float *)malloc(IN_N * sizeof(float));
        expected[i] = (float *)malloc(LOGITS_N * sizeof(float));
        if (!inputs[i] || !expected[i]) return 2;
        for (j = 0; j < IN_N; j++) inputs[i][j] = (float)((j * 2654435761u + i * 40503u) >> 9 & 255u) - 128.0f;
        if (model_run(weights, inputs[i], expected[i], arena) != 0) return 3;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < THREADS; i++)
        if (pthread_create(&threads[i], 0, run_thread, (void *)(uintptr_t)i) != 0) return 4;
    for (i = 0; i < THREADS; i++) {
        void *result;
        pthread_join(threads[i], &result);
        failed += result != 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("threads %d inferences %d failed %lu wall_ms %.1f\n", THREADS, THREADS * INFERENCES, (unsigned long)failed,
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    return failed ? 5 : 0;
}
