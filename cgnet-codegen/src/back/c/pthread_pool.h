/* cgnet_pthread_pool.h: a default thread pool for the `*_parallel` entry points
 * of cgnet-generated C, for hosts without a pool of their own. Header-only;
 * needs pthreads and the GCC/Clang __atomic builtins.
 *
 *   cgnet_pool pool;
 *   cgnet_pool_init(&pool, 4);
 *   NAME_parallel_for pf = { &pool, 4, cgnet_pool_run };
 *   NAME_segment_parallel(input, labels, arena, &pf);
 *   cgnet_pool_destroy(&pool);
 *
 * A model runs ~100 short steps per inference, so workers spin briefly on a
 * generation counter before sleeping, and the caller spins until they finish.
 * The pool allocates nothing after init; `pool` must stay at one address while
 * it runs. One caller at a time. */
#ifndef CGNET_PTHREAD_POOL_H
#define CGNET_PTHREAD_POOL_H

#include <pthread.h>
#include <sched.h>
#include <stddef.h>

#define CGNET_POOL_MAX_THREADS 64
#define CGNET_POOL_SPINS 20000

struct cgnet_pool;
typedef struct { struct cgnet_pool *pool; size_t index; } cgnet_pool_worker_arg;

typedef struct cgnet_pool {
    pthread_t threads[CGNET_POOL_MAX_THREADS];
    cgnet_pool_worker_arg args[CGNET_POOL_MAX_THREADS];
    size_t workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    unsigned long generation; /* __atomic */
    size_t remaining;         /* __atomic */
    int shutdown;             /* __atomic */
    /* Written before `generation` is bumped; read by workers after they see the bump. */
    void (*fn)(void *arg, size_t index);
    void *arg;
    size_t parts;
} cgnet_pool;

static void *cgnet_pool_worker(void *p) {
    cgnet_pool_worker_arg *a = (cgnet_pool_worker_arg *)p;
    cgnet_pool *pool = a->pool;
    unsigned long seen = 0;
    for (;;) {
        unsigned spins = 0;
        size_t i;
        for (;;) {
            unsigned long g;
            if (__atomic_load_n(&pool->shutdown, __ATOMIC_ACQUIRE)) return 0;
            g = __atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE);
            if (g != seen) { seen = g; break; }
            if (spins < CGNET_POOL_SPINS) { spins++; continue; }
            pthread_mutex_lock(&pool->lock);
            if (__atomic_load_n(&pool->generation, __ATOMIC_ACQUIRE) == seen && !__atomic_load_n(&pool->shutdown, __ATOMIC_ACQUIRE))
                pthread_cond_wait(&pool->wake, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
        }
        for (i = a->index; i < pool->parts; i += pool->workers + 1) pool->fn(pool->arg, i);
        __atomic_fetch_sub(&pool->remaining, 1, __ATOMIC_RELEASE);
    }
}

/* Starts threads - 1 workers (the caller is the last). Returns 0 on success. */
static int cgnet_pool_init(cgnet_pool *pool, size_t threads) {
    size_t i;
    if (threads < 1 || threads > CGNET_POOL_MAX_THREADS) return -1;
    pool->workers = 0; pool->generation = 0; pool->remaining = 0; pool->shutdown = 0;
    pool->fn = 0; pool->arg = 0; pool->parts = 0;
    pthread_mutex_init(&pool->lock, 0);
    pthread_cond_init(&pool->wake, 0);
    for (i = 1; i < threads; i++) {
        pool->args[i].pool = pool;
        pool->args[i].index = i;
        if (pthread_create(&pool->threads[i], 0, cgnet_pool_worker, &pool->args[i]) != 0) return -1;
        pool->workers++;
    }
    return 0;
}

/* The `run` member of a NAME_parallel_for: fn(arg, i) for i in 0..n. */
static void cgnet_pool_run(void *ctx, size_t n, void (*fn)(void *arg, size_t index), void *arg) {
    cgnet_pool *pool = (cgnet_pool *)ctx;
    size_t i;
    unsigned spins = 0;
    if (pool->workers == 0) {
        for (i = 0; i < n; i++) fn(arg, i);
        return;
    }
    pool->fn = fn; pool->arg = arg; pool->parts = n;
    __atomic_store_n(&pool->remaining, pool->workers, __ATOMIC_RELAXED);
    __atomic_fetch_add(&pool->generation, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    /* The caller takes index 0 and every (workers + 1)-th index after it. */
    for (i = 0; i < n; i += pool->workers + 1) fn(arg, i);
    while (__atomic_load_n(&pool->remaining, __ATOMIC_ACQUIRE) != 0)
        if (++spins % 1024 == 0) sched_yield();
}

static void cgnet_pool_destroy(cgnet_pool *pool) {
    size_t i;
    __atomic_store_n(&pool->shutdown, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (i = 1; i <= pool->workers; i++) pthread_join(pool->threads[i], 0);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
}

#endif /* CGNET_PTHREAD_POOL_H */
