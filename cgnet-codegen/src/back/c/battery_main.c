/* The kernel battery's driver (see `battery_source`): every case serially, then
 * through the pthread pool, from the same starting arena. */
static float *alloc_floats(uint64_t n) {
    void *p = 0;
    if (posix_memalign(&p, 64, (size_t)(n ? n : 1) * sizeof(float)) != 0) exit(2);
    return (float *)p;
}

static float *read_floats(FILE *f, uint64_t n) {
    float *p = alloc_floats(n);
    if (n && fread(p, sizeof(float), (size_t)n, f) != (size_t)n) exit(3);
    return p;
}

int main(int argc, char **argv) {
    FILE *in, *out;
    size_t i, threads;
    cgnet_pool pool;
    battery_parallel_for pf;
    if (argc != 4) {
        fprintf(stderr, "usage: %s IN OUT THREADS\n", argv[0]);
        return 1;
    }
    in = fopen(argv[1], "rb");
    out = fopen(argv[2], "wb");
    threads = (size_t)atoi(argv[3]);
    if (!in || !out || cgnet_pool_init(&pool, threads) != 0) return 2;
    pf.ctx = &pool;
    pf.threads = cgnet_pool_threads(&pool);
    pf.run = cgnet_pool_run;
    for (i = 0; i < CASES; i++) {
        uint64_t lens[3];
        float *start, *arena, *input, *weights;
        cg_mem m;
        int mode;
        if (fread(lens, sizeof lens, 1, in) != 1) return 3;
        start = read_floats(in, lens[0]);
        input = read_floats(in, lens[1]);
        weights = read_floats(in, lens[2]);
        arena = alloc_floats(lens[0]);
        for (mode = 0; mode < 2; mode++) {
            memcpy(arena, start, (size_t)lens[0] * sizeof(float));
            m.arena = arena;
            m.input = input;
            m.logits = 0;
            m.scores = 0;
            m.labels = 0;
            m.rgb8 = 0;
            m.mean = 0;
            m.inv_std = 0;
            m.w = weights;
            run_case(i, &m, mode ? &pf : 0);
            if (fwrite(arena, sizeof(float), (size_t)lens[0], out) != (size_t)lens[0]) return 4;
        }
        free(start);
        free(input);
        free(weights);
        free(arena);
    }
    cgnet_pool_destroy(&pool);
    return fclose(out) == 0 ? 0 : 4;
}
