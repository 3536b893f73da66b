/* cgnet_pthread_pool.h: a default thread pool for the `*_parallel` entry points
 * of cgnet-generated C, for hosts without a pool of their own. Header-only.
 *
 *   cgnet_pool pool;
 *   cgnet_pool_init(&pool, 4);
 *   NAME_parallel_for pf = { &pool, 4, cgnet_pool_run };
 *   NAME_segment_parallel(input, labels, arena, &pf);
 *   cgnet_pool_destroy(&pool);
 *
 * The pool allocates nothing after init; `pool` must stay at one address while
 * it runs. One caller at a time. */
#ifndef CGNET_PTHREAD_POOL_H
#define CGNET_PTHREAD_POOL_H

#include <pthread.h>
#include <stddef.h>

#define CGNET_POOL_MAX_THREADS 64

struct cgnet_pool;
typedef struct { struct cgnet_pool *pool; size_t index; } cgnet_pool_worker_arg;

typedef struct cgnet_pool {
    pthread_t threads[CGNET_POOL_MAX_THREADS];
    cgnet_pool_worker_arg args[CGNET_POOL_MAX_THREADS];
    size_t workers;
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    unsigned long generation;
    size_t remaining, parts;
    int shutdown;
    void (*fn)(void *arg, size_t index);
    void *arg;
} cgnet_pool;


static void *cgnet_pool_worker(void *p) {
    cgnet_pool_worker_arg *a = (cgnet_pool_worker_arg *)p;
    cgnet_pool *pool = a->pool;
    unsigned long seen = 0;
    for (;;) {
        void (*fn)(void *, size_t);
        void *arg;
        size_t parts, i;
        pthread_mutex_lock(&pool->lock);
        while (pool->generation == seen && !pool->shutdown) pthread_cond_wait(&pool->start, &pool->lock);
        if (pool->shutdown) { pthread_mutex_unlock(&pool->lock); return 0; }
        seen = pool->generation;
        fn = pool->fn; arg = pool->arg; parts = pool->parts;
        pthread_mutex_unlock(&pool->lock);
        for (i = a->index; i < parts; i += pool->workers + 1) fn(arg, i);
        pthread_mutex_lock(&pool->lock);
        if (--pool->remaining == 0) pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->lock);
    }
}

/* Starts threads - 1 workers (the caller is the last). Returns 0 on success. */
static int cgnet_pool_init(cgnet_pool *pool, size_t threads) {
    size_t i;
    if (threads < 1 || threads > CGNET_POOL_MAX_THREADS) return -1;
    pool->workers = 0; pool->generation = 0; pool->remaining = 0; pool->shutdown = 0;
    pthread_mutex_init(&pool->lock, 0);
    pthread_cond_init(&pool->start, 0);
    pthread_cond_init(&pool->done, 0);
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
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn; pool->arg = arg; pool->parts = n;
    pool->remaining = pool->workers;
    pool->generation++;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->lock);
    /* The caller takes index 0 and every index beyond the workers. */
    for (i = 0; i < n; i += pool->workers + 1) fn(arg, i);
    pthread_mutex_lock(&pool->lock);
    while (pool->remaining > 0) pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

static void cgnet_pool_destroy(cgnet_pool *pool) {
    size_t i;
    pthread_mutex_lock(&pool->lock);
    pool->shutdown = 1;
    pthread_cond_broadcast(&pool->start);
    pthread_mutex_unlock(&pool->lock);
    for (i = 1; i <= pool->workers; i++) pthread_join(pool->threads[i], 0);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->start);
    pthread_cond_destroy(&pool->done);
}

#endif /* CGNET_PTHREAD_POOL_H */
