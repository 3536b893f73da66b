/* cgnetc's harness helpers (file exchange, timing), shared by harness.c and
 * webgpu_harness.c; not part of any emitted library. */
#define _POSIX_C_SOURCE 200112L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
HARNESS_INCLUDES

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

static double elapsed_ms(const struct timespec *t0, const struct timespec *t1) {
    return (double)(t1->tv_sec - t0->tv_sec) * 1e3 + (double)(t1->tv_nsec - t0->tv_nsec) / 1e6;
}

/* The exchanged tensors: the input read from DIR (floats, or an 8-bit picture for the
 * `_rgb8` entry points, the other null), the three outputs. */
typedef struct {
    const char *dir;
    size_t threads, iters;
    float *input, *logits, *scores;
    unsigned char *picture, *labels;
} harness_io;

#define HARNESS_PIXELS ((size_t)MODEL_INPUT_HEIGHT * MODEL_INPUT_WIDTH)
#define HARNESS_LOGITS ((size_t)MODEL_CLASSES * MODEL_LOGITS_HEIGHT * MODEL_LOGITS_WIDTH)

/* Whether DIR/name exists. */
static int file_exists(const char *dir, const char *name) {
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f) fclose(f);
    return f != 0;
}

/* Parses `DIR THREADS ITERS`, reads DIR/picture.bin if it exists, else DIR/input.bin,
 * and allocates the outputs (exits on failure). */
static void harness_open(harness_io *io, int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR THREADS ITERS\n", argv[0]);
        exit(1);
    }
    io->dir = argv[1];
    io->threads = (size_t)atoi(argv[2]);
    io->iters = (size_t)atoi(argv[3]);
    io->input = 0;
    io->picture = 0;
    if (file_exists(argv[1], "picture.bin")) io->picture = (unsigned char *)read_file(argv[1], "picture.bin", 3u * HARNESS_PIXELS);
    else io->input = (float *)read_file(argv[1], "input.bin", 3u * HARNESS_PIXELS * sizeof(float));
    io->logits = (float *)malloc(HARNESS_LOGITS * sizeof(float));
    io->scores = (float *)malloc((size_t)MODEL_CLASSES * HARNESS_PIXELS * sizeof(float));
    io->labels = (unsigned char *)malloc(HARNESS_PIXELS);
    if (!io->logits || !io->scores || !io->labels) exit(2);
}

/* Writes DIR/logits.bin, DIR/scores.bin and DIR/labels.bin. */
static void harness_write(const harness_io *io) {
    write_file(io->dir, "logits.bin", io->logits, HARNESS_LOGITS * sizeof(float));
    write_file(io->dir, "scores.bin", io->scores, (size_t)MODEL_CLASSES * HARNESS_PIXELS * sizeof(float));
    write_file(io->dir, "labels.bin", io->labels, HARNESS_PIXELS);
}

static void harness_close(harness_io *io) {
    free(io->labels);
    free(io->scores);
    free(io->logits);
    free(io->input);
    free(io->picture);
}

/* Prints the median, min and max of `n` timings (sorts them). */
static void print_times(double *ms, size_t n) {
    qsort(ms, n, sizeof(double), cmp_double);
    printf("median_ms %.3f min_ms %.3f max_ms %.3f\n", ms[n / 2], ms[0], ms[n - 1]);
}
