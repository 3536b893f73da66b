/* cgnet_pthread_pool.h: a default thread pool for the `*_parallel` entry points
 * of cgnet-generated C, for hosts without a pool of their own. Header-only;
 * needs pthreads and the GCC/Clang __atomic builtins.
 *
 *   cgnet_pool pool;
 *   cgnet_pool_init(&pool, 0);                 (0: as many threads as free cores)
 *   NAME_parallel_for pf = { &pool, cgnet_pool_threads(&pool), cgnet_pool_run };
 *   NAME_segment_parallel(input, labels, arena, &pf);
 *   cgnet_pool_destroy(&pool);
 *
 * Built for machines that are never idle (a camera pipeline, a UI or another
 * process holds cores), so it never waits for a thread that is not running:
 * - `cgnet_pool_run(n)` publishes a job of n chunks; the caller and the workers
 *   that join while chunks are left claim them from an atomic counter. A worker
 *   that wakes after the last chunk was claimed does not join.
 * - The caller then waits only for the chunks in flight, spinning briefly and
 *   then sleeping, so the core it frees can run a preempted worker.
 * - At most one worker per online core beside the caller's (`seats`) joins a
 *   job, is woken for one, or spins while idle: a pool with more threads than
 *   cores behaves like one with a thread per core, the extra workers asleep.
 *   Idle workers spin ~100 us of their own time (longer than most serial
 *   stretches of an inference), then sleep on a condition variable.
 * The pool allocates nothing after init; `pool` must stay at one address while
 * it runs. One caller at a time. */
#ifndef CGNET_PTHREAD_POOL_H
#define CGNET_PTHREAD_POOL_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#define CGNET_POOL_MAX_THREADS 64
/* How long an idle worker spins for the next job before it sleeps, in spins
 * (~100 us where a pause is ~50 ns, as on recent Intel cores; less on AMD's):
 * longer than most serial stretches between two split steps, so a worker stays
 * awake through an inference (waking a sleeping thread costs tens of
 * microseconds, far more on a virtual machine), short enough to give its core
 * back soon after one. Counted in spins, not wall time, so that a worker that
 * was descheduled meanwhile has not used it up. */
#define CGNET_POOL_IDLE_SPINS 2000u
/* How long the caller spins for the chunks in flight before it sleeps: a chunk
 * that takes longer was most likely preempted, and the caller's core, once it
 * sleeps, can run that thread. */
#define CGNET_POOL_CALLER_SPIN_NS 50000L

struct cgnet_pool;
typedef struct { struct cgnet_pool *pool; size_t index; } cgnet_pool_worker_arg;

typedef struct cgnet_pool {
    pthread_t threads[CGNET_POOL_MAX_THREADS];
    cgnet_pool_worker_arg args[CGNET_POOL_MAX_THREADS];
    size_t workers;
    size_t seats; /* workers that may join a job, spin or be woken: cores - 1, at least 1 */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* workers wait here for a job */
    pthread_cond_t done; /* the caller waits here for the joined workers */
    /* The padding keeps what is written per chunk, per job and per sleep on
     * separate cache lines, so that spinning threads do not slow the others. */
    char pad0[64];
    /* Written before the generation is published; read by a worker only after it
     * joined (counted in `active`) and saw that generation still open. */
    void (*fn)(void *arg, size_t index);
    void *arg;
    size_t n;
    /* All __atomic. state = generation << 1 | open: a job is published as a new
     * generation with the open bit set and closed when no chunk is left to claim. */
    unsigned long state;
    int shutdown;
    char pad1[64];
    size_t next;       /* the next chunk to claim */
    char pad2[64];
    size_t active;     /* workers inside the current job */
    size_t sleepers;   /* workers asleep on `wake` */
    int caller_asleep; /* the caller is asleep on `done` */
    char pad3[64];
} cgnet_pool;

static long cgnet_pool_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

/* A hint to the CPU inside spin loops (frees the core's pipeline, saves power). */
static void cgnet_pool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Claims and runs chunks until none is left. */
static void cgnet_pool_claim(cgnet_pool *pool) {
    size_t i;
    while ((i = __atomic_fetch_add(&pool->next, 1, __ATOMIC_RELAXED)) < pool->n) pool->fn(pool->arg, i);
}

/* True while worker `seen` has nothing new to do. */
static int cgnet_pool_idle(cgnet_pool *pool, unsigned long seen) {
    return (__atomic_load_n(&pool->state, __ATOMIC_SEQ_CST) >> 1) == seen && !__atomic_load_n(&pool->shutdown, __ATOMIC_SEQ_CST);
}

static void *cgnet_pool_worker(void *p) {
    cgnet_pool_worker_arg *a = (cgnet_pool_worker_arg *)p;
    cgnet_pool *pool = a->pool;
    unsigned long seen = 0, state;
    for (;;) {
        unsigned spins = 0;
        /* Spin only if the workers awake (not asleep) fit in the seats. */
        const int spin = pool->workers - __atomic_load_n(&pool->sleepers, __ATOMIC_SEQ_CST) <= pool->seats;
        while (cgnet_pool_idle(pool, seen)) {
            if (spin && ++spins <= CGNET_POOL_IDLE_SPINS) {
                cgnet_pool_pause();
                continue;
            }
            pthread_mutex_lock(&pool->lock);
            __atomic_fetch_add(&pool->sleepers, 1, __ATOMIC_SEQ_CST);
            while (cgnet_pool_idle(pool, seen)) pthread_cond_wait(&pool->wake, &pool->lock);
            __atomic_fetch_sub(&pool->sleepers, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&pool->lock);
        }
        if (__atomic_load_n(&pool->shutdown, __ATOMIC_SEQ_CST)) return 0;
        state = __atomic_load_n(&pool->state, __ATOMIC_SEQ_CST);
        seen = state >> 1;
        if (!(state & 1)) continue; /* closed before this worker got to it */
        /* Joined only if a seat was free and the job is still open now that this
         * worker is counted: the caller closes before it reads `active`, so one
         * of the two sees the other. */
        if (__atomic_fetch_add(&pool->active, 1, __ATOMIC_SEQ_CST) < pool->seats
            && __atomic_load_n(&pool->state, __ATOMIC_SEQ_CST) == state)
            cgnet_pool_claim(pool);
        if (__atomic_fetch_sub(&pool->active, 1, __ATOMIC_SEQ_CST) == 1 && __atomic_load_n(&pool->caller_asleep, __ATOMIC_SEQ_CST)) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
}

/* Online cores (at least 1). */
static size_t cgnet_pool_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > CGNET_POOL_MAX_THREADS ? CGNET_POOL_MAX_THREADS : (size_t)n;
}

/* Starts threads - 1 workers (the caller is the last); threads 0 means one per
 * online core. Returns 0 on success, -1 (nothing left running) on failure. */
static int cgnet_pool_init(cgnet_pool *pool, size_t threads) {
    size_t i, started = 0, cores = cgnet_pool_cores();
    if (threads == 0) threads = cores;
    if (threads > CGNET_POOL_MAX_THREADS) return -1;
    /* Set before any worker starts: workers read it. */
    pool->workers = threads - 1; pool->seats = cores > 1 ? cores - 1 : 1;
    pool->state = 0; pool->active = 0; pool->sleepers = 0; pool->caller_asleep = 0; pool->shutdown = 0;
    pool->next = 0; pool->fn = 0; pool->arg = 0; pool->n = 0;
    pthread_mutex_init(&pool->lock, 0);
    pthread_cond_init(&pool->wake, 0);
    pthread_cond_init(&pool->done, 0);
    for (i = 1; i < threads; i++) {
        pool->args[i].pool = pool;
        pool->args[i].index = i;
        if (pthread_create(&pool->threads[i], 0, cgnet_pool_worker, &pool->args[i]) != 0) break;
        started++;
    }
    if (started + 1 == threads) return 0;
    __atomic_store_n(&pool->shutdown, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (i = 1; i <= started; i++) pthread_join(pool->threads[i], 0);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    return -1;
}

/* Threads of the pool, the caller included: the `threads` of a NAME_parallel_for. */
static size_t cgnet_pool_threads(const cgnet_pool *pool) { return pool->workers + 1; }

/* The `run` member of a NAME_parallel_for: fn(arg, i) once for every i in 0..n. */
static void cgnet_pool_run(void *ctx, size_t n, void (*fn)(void *arg, size_t index), void *arg) {
    cgnet_pool *pool = (cgnet_pool *)ctx;
    unsigned long generation;
    size_t sleepers, awake;
    long start;
    unsigned spins = 0;
    if (pool->workers == 0 || n < 2) {
        size_t i;
        for (i = 0; i < n; i++) fn(arg, i);
        return;
    }
    pool->fn = fn; pool->arg = arg; pool->n = n;
    __atomic_store_n(&pool->next, 0, __ATOMIC_RELAXED);
    generation = (__atomic_load_n(&pool->state, __ATOMIC_RELAXED) >> 1) + 1;
    __atomic_store_n(&pool->state, generation << 1 | 1, __ATOMIC_SEQ_CST);
    /* Wake sleepers for the seats that no awake worker will take. */
    sleepers = __atomic_load_n(&pool->sleepers, __ATOMIC_SEQ_CST);
    awake = pool->workers - (sleepers < pool->workers ? sleepers : pool->workers);
    if (awake < pool->seats && sleepers > 0) {
        size_t wanted = pool->seats - awake < sleepers ? pool->seats - awake : sleepers;
        pthread_mutex_lock(&pool->lock);
        while (wanted-- > 0) pthread_cond_signal(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    cgnet_pool_claim(pool);
    /* Close: workers that have not joined yet will not. */
    __atomic_store_n(&pool->state, generation << 1, __ATOMIC_SEQ_CST);
    start = cgnet_pool_now_ns();
    while (__atomic_load_n(&pool->active, __ATOMIC_SEQ_CST) != 0) {
        if (++spins % 64 != 0 || cgnet_pool_now_ns() - start < CGNET_POOL_CALLER_SPIN_NS) {
            cgnet_pool_pause();
            continue;
        }
        pthread_mutex_lock(&pool->lock);
        __atomic_store_n(&pool->caller_asleep, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&pool->active, __ATOMIC_SEQ_CST) != 0) pthread_cond_wait(&pool->done, &pool->lock);
        __atomic_store_n(&pool->caller_asleep, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&pool->lock);
        break;
    }
}

static void cgnet_pool_destroy(cgnet_pool *pool) {
    size_t i;
    __atomic_store_n(&pool->shutdown, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (i = 1; i <= pool->workers; i++) pthread_join(pool->threads[i], 0);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
}

#endif /* CGNET_PTHREAD_POOL_H */
