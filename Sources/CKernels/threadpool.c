/*
 * threadpool.c — small persistent pthread pool behind ck_parallel_for, thread-count
 * setting (ck_set_threads / TUNE_THREADS / online cores) and per-thread scratch memory.
 *
 * Workers are created lazily on the first parallel call and kept forever. A job is
 * published by bumping a generation counter; workers spin briefly, then sleep on a
 * condition variable. Tasks are claimed dynamically from an atomic counter: kernels make
 * each task's result independent of the thread running it, so outputs are bit-identical
 * for any thread count.
 */
#include "ck_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CK_MAX_THREADS 256
#define CK_SPIN 2000

static inline void cpu_relax(void) {
#if CK_X86
    __builtin_ia32_pause();
#endif
}

// ---- thread count ------------------------------------------------------------------

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static _Atomic int n_threads = 1;

static int clamp_threads(long n) { return n < 1 ? 1 : n > CK_MAX_THREADS ? CK_MAX_THREADS : (int)n; }

static void threads_init(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("TUNE_THREADS");
    if (env && *env) {
        char *end = NULL;
        const long v = strtol(env, &end, 10);
        if (end && *end == 0 && v > 0) n = v;
    }
    atomic_store(&n_threads, clamp_threads(n));
}

void ck_set_threads(int n) {
    pthread_once(&threads_once, threads_init);
    atomic_store(&n_threads, clamp_threads(n));
}

int ck_get_threads(void) {
    pthread_once(&threads_once, threads_init);
    return atomic_load_explicit(&n_threads, memory_order_relaxed);
}

// ---- pool state ------------------------------------------------------------------------

typedef struct {
    pthread_mutex_t busy;          // held by the one caller thread using the pool
    pthread_mutex_t lock;          // protects the condition variables below
    pthread_cond_t cv_work, cv_done;
    int n_workers;                 // started so far (grows, never shrinks)
    _Atomic uint64_t gen;          // bumped once per job
    _Atomic int pending;           // workers that have not finished the current job
    // current job (written by the caller before bumping gen; read-only while pending > 0)
    ck_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    int n_active;                  // workers taking part (ids 0 .. n_active-1)
    _Atomic int64_t next;          // next unclaimed task
} ck_pool;

static ck_pool pool = {
    .busy = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER,
    .cv_work = PTHREAD_COND_INITIALIZER, .cv_done = PTHREAD_COND_INITIALIZER,
};
static _Thread_local int in_task = 0;
static uint64_t start_gen[CK_MAX_THREADS]; // generation current when worker i was created

static void run_tasks(void) {
    const ck_task_fn fn = pool.fn;
    void *ctx = pool.ctx;
    const int64_t n = pool.n_tasks;
    in_task = 1;
    for (;;) {
        const int64_t i = atomic_fetch_add_explicit(&pool.next, 1, memory_order_relaxed);
        if (i >= n) break;
        fn(ctx, i);
    }
    in_task = 0;
}

static void *worker_main(void *arg) {
    const int id = (int)(intptr_t)arg;
    uint64_t seen = start_gen[id];
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool.gen, memory_order_acquire) == seen && spins < CK_SPIN) {
            cpu_relax();
            spins++;
        }
        if (atomic_load_explicit(&pool.gen, memory_order_acquire) == seen) {
            pthread_mutex_lock(&pool.lock);
            while (atomic_load(&pool.gen) == seen) pthread_cond_wait(&pool.cv_work, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = atomic_load(&pool.gen);
        if (id < pool.n_active) run_tasks();
        // every worker acknowledges every job, so the caller can safely publish the next one
        if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.cv_done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return NULL;
}

/* Starts workers up to `want` (called with pool.busy held). Returns how many exist. */
static int ensure_workers(int want) {
    while (pool.n_workers < want) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        start_gen[pool.n_workers] = atomic_load(&pool.gen);
        const int rc = pthread_create(&th, &attr, worker_main, (void *)(intptr_t)pool.n_workers);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool.n_workers++;
    }
    return pool.n_workers;
}

// ---- parallel_for ---------------------------------------------------------------------

static void run_serial(int64_t n_tasks, ck_task_fn fn, void *ctx) {
    for (int64_t i = 0; i < n_tasks; i++) fn(ctx, i);
}

void ck_parallel_for(int64_t n_tasks, ck_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    const int nt = ck_get_threads();
    if (n_tasks == 1 || nt <= 1 || in_task || pthread_mutex_trylock(&pool.busy) != 0) {
        run_serial(n_tasks, fn, ctx);
        return;
    }
    int helpers = nt - 1;
    if (helpers > n_tasks - 1) helpers = (int)(n_tasks - 1);
    const int have = ensure_workers(helpers);
    if (have < helpers) helpers = have;
    if (helpers == 0) {
        pthread_mutex_unlock(&pool.busy);
        run_serial(n_tasks, fn, ctx);
        return;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n_tasks = n_tasks;
    pool.n_active = helpers;
    atomic_store_explicit(&pool.next, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.pending, pool.n_workers, memory_order_relaxed);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
    pthread_cond_broadcast(&pool.cv_work);
    pthread_mutex_unlock(&pool.lock);

    run_tasks();

    int spins = 0;
    while (atomic_load_explicit(&pool.pending, memory_order_acquire) != 0 && spins < CK_SPIN) {
        cpu_relax();
        spins++;
    }
    if (atomic_load_explicit(&pool.pending, memory_order_acquire) != 0) {
        pthread_mutex_lock(&pool.lock);
        while (atomic_load(&pool.pending) != 0) pthread_cond_wait(&pool.cv_done, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.busy);
}

// ---- per-thread scratch ---------------------------------------------------------------

typedef struct { float *p; size_t n; } scratch_buf;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *v) {
    scratch_buf *s = v;
    if (s) { free(s->p); free(s); }
}
static pthread_key_t caller_key; // ck_scratch_caller's buffers
static void scratch_init(void) {
    pthread_key_create(&scratch_key, scratch_free);
    pthread_key_create(&caller_key, scratch_free);
}

static float *scratch_get(pthread_key_t key, size_t n) {
    scratch_buf *s = pthread_getspecific(key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        pthread_setspecific(key, s);
    }
    if (s->n < n) {
        const size_t bytes = ((n * sizeof(float)) + 63) & ~(size_t)63;
        float *p = aligned_alloc(64, bytes);
        if (!p) return NULL;
        free(s->p);
        s->p = p;
        s->n = n;
    }
    return s->p;
}

float *ck_scratch(size_t n) {
    pthread_once(&scratch_once, scratch_init);
    return scratch_get(scratch_key, n);
}

float *ck_scratch_caller(size_t n) {
    pthread_once(&scratch_once, scratch_init);
    return scratch_get(caller_key, n);
}
