/* A C program written only against the documented API of emitted code:
 *
 *   cgnetc build models/camvid.cgnet --target c-avx2 --out build/camvid
 *   cc -std=c99 -O3 -mavx2 -mfma -Ibuild/camvid examples/c/camvid_demo.c \
 *      build/camvid/camvid.c build/camvid/camvid_weights.c -lm -o camvid_demo
 *   ./camvid_demo input.bin logits.bin labels.bin
 *
 * (the weights come from the file models/camvid.cgnet names). input.bin: float32
 * [1,3,360,480] NCHW, R, G, B planes of 0..255 pixel values minus the CamVid mean
 * (105.65775, 103.329834, 99.625404), not divided. Writes the
 * logits (float32 NCHW) and the labels (one byte per pixel), and prints how
 * many pixels each class got. */
#define _POSIX_C_SOURCE 200112L
#include <stdio.h>
#include <stdlib.h>
#include "camvid.h"

static int io(const char *path, void *data, size_t bytes, int writing) {
    FILE *f = fopen(path, writing ? "wb" : "rb");
    size_t done;
    if (!f) return -1;
    done = writing ? fwrite(data, 1, bytes, f) : fread(data, 1, bytes, f);
    return (fclose(f) == 0 && done == bytes) ? 0 : -1;
}

int main(int argc, char **argv) {
    const size_t pixels = (size_t)CAMVID_INPUT_HEIGHT * CAMVID_INPUT_WIDTH;
    const size_t logits_n = (size_t)CAMVID_CLASSES * CAMVID_LOGITS_HEIGHT * CAMVID_LOGITS_WIDTH;
    float *input = malloc(3 * pixels * sizeof(float));
    float *logits = malloc(logits_n * sizeof(float));
    uint8_t *labels = malloc(pixels);
    void *arena = 0;
    size_t counts[CAMVID_CLASSES] = {0}, i;
    if (argc != 4) {
        fprintf(stderr, "usage: %s INPUT.bin LOGITS.bin LABELS.bin\n", argv[0]);
        return 1;
    }
    if (!input || !logits || !labels || posix_memalign(&arena, CAMVID_ARENA_ALIGN, camvid_arena_bytes()) != 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    if (io(argv[1], input, 3 * pixels * sizeof(float), 0) != 0) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    if (camvid_run(input, logits, arena) != 0 || camvid_segment(input, labels, arena) != 0) {
        fprintf(stderr, "inference failed\n");
        return 1;
    }
    /* The documented error codes. */
    if (camvid_run(0, logits, arena) != CAMVID_E_NULL || camvid_run(input, logits, (char *)arena + 4) != CAMVID_E_ALIGN) {
        fprintf(stderr, "error codes are wrong\n");
        return 1;
    }
    if (io(argv[2], logits, logits_n * sizeof(float), 1) != 0 || io(argv[3], labels, pixels, 1) != 0) {
        fprintf(stderr, "cannot write the outputs\n");
        return 1;
    }
    for (i = 0; i < pixels; i++) counts[labels[i]]++;
    for (i = 0; i < CAMVID_CLASSES; i++) printf("class %2u: %6u pixels\n", (unsigned)i, (unsigned)counts[i]);
    free(arena);
    free(input);
    free(logits);
    free(labels);
    return 0;
}
