//! A fixed pool of worker threads for splitting kernel steps into chunks.
//! Created once; `run` allocates nothing, so inference stays allocation-free.
//!
//! A model runs ~100 short steps per inference, and the machine is rarely idle
//! (a camera pipeline, a UI or another process holds cores), so the pool is
//! built to never wait for a thread that is not running:
//!
//! - `run` calls the job on the caller and on whichever workers *join* while the
//!   caller is still in it; the job divides its work itself (`Exec::step`
//!   claims chunks of rows from a counter). A worker that wakes after the caller
//!   finished its own call does not join, so a descheduled worker costs nothing.
//! - The caller then waits only for the workers that joined, spinning briefly and
//!   then sleeping, so that the core it frees can run a preempted worker.
//! - At most one worker per core beyond the caller's (`seats`) joins a job, is
//!   woken for one, or spins while idle: a pool with more threads than cores
//!   behaves like one with a thread per core, the extra workers asleep. Idle
//!   workers spin ~100 µs of their own time (longer than most serial stretches
//!   of an inference) before sleeping on a condvar.
//!
//! Safety contract: the pool is `Sync`, and concurrent callers of `run` take
//! turns (one job at a time, behind a lock). A job that panics, on the caller
//! or on a worker, is propagated to the caller of `run` only after every worker
//! that joined is done with the job, so no worker ever calls a closure that has gone.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::kernels::ParallelFor;

/// How long an idle worker spins for the next job before it sleeps, in spins
/// (~100 µs where a spin-loop hint is ~50 ns, as on recent Intel cores; less on
/// AMD's): longer than most serial stretches between two split steps, so a
/// worker stays awake through an inference (waking a sleeping thread costs tens
/// of microseconds, far more on a virtual machine), and short enough to give its
/// core back soon after one. Counted in spins, not wall time, so that a worker
/// that was descheduled meanwhile has not used it up. Workers beyond the seats
/// never spin.
const IDLE_SPINS: u32 = 2000;

/// How long the caller spins for the chunks in flight before it sleeps: a few
/// chunks' time. A chunk that takes longer was most likely preempted, and the
/// caller's core, once it sleeps, can run that thread.
const CALLER_SPIN: Duration = Duration::from_micros(50);

/// The number of threads that can run at once here: `available_parallelism`
/// (which follows the process's CPU affinity and cgroup quota), 1 if unknown.
/// What `ThreadPool::new(0)` and `cgnetc --threads auto` use.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A job pointer with its lifetime erased; `ThreadPool::run` waits for every
/// worker that joined the job to finish with it before returning, so it never dangles.
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize) + Sync + 'static));

struct Shared {
    /// `generation << 1 | open`. `run` publishes a job as a new generation with
    /// the open bit set and clears the bit when its own call of the job returns;
    /// a worker joins only while the bit is set.
    state: AtomicU64,
    /// Workers inside the current job (joined and not yet done).
    active: AtomicUsize,
    /// Workers asleep on `wake`: `run` notifies only when there are some.
    sleepers: AtomicUsize,
    /// The caller of `run` is asleep on `done`, waiting for `active` to reach zero.
    caller_asleep: AtomicBool,
    shutdown: AtomicBool,
    /// Workers that may be in a job at once, spin while idle, or be woken for a
    /// job: one per core beside the caller's (at least one).
    seats: usize,
    /// Workers of the pool.
    workers: usize,
    /// Workers whose thread is running (`new` returns once all are, so that no
    /// thread start-up, which allocates, overlaps a later job).
    started: AtomicUsize,
    /// Written by `run` before it publishes a generation; read by a worker only
    /// after it joined (counted in `active`) and saw that generation still open.
    job: UnsafeCell<Option<Job>>,
    /// Set by a worker whose call of the job panicked; `run` reports it.
    panicked: AtomicBool,
    /// Held by `run` for a whole job: concurrent callers take turns.
    caller: Mutex<()>,
    lock: Mutex<()>,
    wake: Condvar,
    done: Condvar,
}

// SAFETY: `job` is only written by the one `run` holding `caller`, while no
// worker is joined to a job (`active` is zero after the job was closed, and a
// worker reads `job` only after joining and seeing its generation still open,
// which the sequentially consistent `state` / `active` accesses order). The job
// it points to is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; nothing in `Shared` is tied to the thread that made it.
unsafe impl Send for Shared {}

impl Shared {
    fn locked(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `condition` is false: spins at most `spins` times and for at
    /// most `time`, then sleeps on `condvar`, with `asleep` raised so that the
    /// thread that changes the condition knows to notify.
    fn wait_while(
        &self,
        condition: impl Fn() -> bool,
        (spins, time): (u32, Duration),
        asleep: impl Fn(bool),
        condvar: &Condvar,
    ) {
        let start = Instant::now();
        let mut spun = 0u32;
        while condition() {
            spun = spun.saturating_add(1);
            // The clock is read once per 64 spins.
            if spun <= spins && (!spun.is_multiple_of(64) || start.elapsed() < time) {
                std::hint::spin_loop();
                continue;
            }
            let mut guard = self.locked();
            asleep(true);
            while condition() {
                guard = condvar.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            asleep(false);
            return;
        }
    }
}

/// `threads - 1` workers plus the calling thread. Generated models take it as
/// `Some(&pool)` in their `_parallel` entry points; any other [`ParallelFor`] works too.
///
/// ```
/// use cgnet_runtime::kernels::ParallelFor;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let pool = cgnet_runtime::ThreadPool::new(3)?;
/// assert_eq!(pool.threads(), 3);
/// let calls = AtomicUsize::new(0);
/// pool.run(&|_index| {
///     calls.fetch_add(1, Ordering::Relaxed);
/// });
/// // job(0) on the caller, plus job(1) and job(2) on the workers that joined in time.
/// assert!((1..=3).contains(&calls.load(Ordering::Relaxed)));
///
/// // Threads 0: as many as this machine runs at once.
/// assert_eq!(cgnet_runtime::ThreadPool::new(0)?.threads(), cgnet_runtime::pool::available_threads());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// A pool that runs jobs on `threads` threads (the caller included); 0 means
    /// [`available_threads`]. More threads than cores is allowed but never
    /// faster: at most one thread per core works on a job.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let cores = available_threads();
        let threads = if threads == 0 { cores } else { threads };
        let shared = Arc::new(Shared {
            state: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            caller_asleep: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            seats: cores.saturating_sub(1).max(1),
            workers: threads - 1,
            started: AtomicUsize::new(0),
            job: UnsafeCell::new(None),
            panicked: AtomicBool::new(false),
            caller: Mutex::new(()),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        let mut pool = Self { shared, workers: Vec::with_capacity(threads - 1) };
        for index in 1..threads {
            let shared = Arc::clone(&pool.shared);
            // On failure, dropping `pool` stops the workers already started.
            let worker = std::thread::Builder::new()
                .name(format!("cgnet-worker-{index}"))
                .spawn(move || worker(&shared, index))?;
            pool.workers.push(worker);
        }
        while pool.shared.started.load(SeqCst) < pool.shared.workers {
            std::thread::yield_now();
        }
        Ok(pool)
    }
}

fn worker(shared: &Shared, index: usize) {
    shared.started.fetch_add(1, SeqCst);
    let mut seen = 0u64;
    loop {
        // Spin only if the workers awake (not asleep) fit in the seats.
        let awake = shared.workers - shared.sleepers.load(SeqCst).min(shared.workers);
        shared.wait_while(
            || shared.state.load(SeqCst) >> 1 == seen && !shared.shutdown.load(SeqCst),
            (if awake <= shared.seats { IDLE_SPINS } else { 0 }, Duration::MAX),
            |asleep| {
                if asleep {
                    shared.sleepers.fetch_add(1, SeqCst);
                } else {
                    shared.sleepers.fetch_sub(1, SeqCst);
                }
            },
            &shared.wake,
        );
        if shared.shutdown.load(Acquire) {
            return;
        }
        let state = shared.state.load(SeqCst);
        seen = state >> 1;
        if state & 1 == 0 {
            continue; // closed before this worker got to it
        }
        let seated = shared.active.fetch_add(1, SeqCst) < shared.seats;
        // Joined only if a seat was free and the job is still open now that this
        // worker is counted: `run` closes it before it reads `active`, so one of
        // the two sees the other.
        if seated && shared.state.load(SeqCst) == state {
            // SAFETY: the job was written before its generation was published, and
            // `run` does not touch it again before `active` is back to zero.
            if let Some(Job(f)) = unsafe { *shared.job.get() } {
                // SAFETY: `run` keeps the job alive until `active` is zero, even
                // when its own call panics.
                let call = || unsafe { (*f)(index) };
                if catch_unwind(AssertUnwindSafe(call)).is_err() {
                    shared.panicked.store(true, Relaxed);
                }
            }
        }
        if shared.active.fetch_sub(1, SeqCst) == 1 && shared.caller_asleep.load(SeqCst) {
            drop(shared.locked());
            shared.done.notify_one();
        }
    }
}

impl ParallelFor for ThreadPool {
    fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    fn run(&self, job: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() {
            job(0);
            return;
        }
        let shared = &*self.shared;
        // One job at a time; a panic of an earlier job does not make the pool unusable.
        let _turn = shared.caller.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: only the lifetime is erased; this function neither returns nor
        // unwinds before every worker that joined has finished calling the job
        // (job(0) runs under `catch_unwind`, and the wait below always runs).
        let erased: &(dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(job) };
        // SAFETY: no worker is joined (`active` was zero when the previous job ended).
        unsafe { *shared.job.get() = Some(Job(erased)) };
        let generation = (shared.state.load(Relaxed) >> 1).wrapping_add(1);
        shared.state.store(generation << 1 | 1, SeqCst);
        // Wake sleepers for the seats that no awake worker will take.
        let sleepers = shared.sleepers.load(SeqCst);
        let awake = shared.workers - sleepers.min(shared.workers);
        let wanted = shared.seats.saturating_sub(awake).min(sleepers);
        if wanted > 0 {
            drop(shared.locked());
            for _ in 0..wanted {
                shared.wake.notify_one();
            }
        }
        let own = catch_unwind(AssertUnwindSafe(|| job(0)));
        // Close: workers that have not joined yet will not.
        shared.state.store(generation << 1, SeqCst);
        shared.wait_while(
            || shared.active.load(SeqCst) != 0,
            (u32::MAX, CALLER_SPIN),
            |asleep| shared.caller_asleep.store(asleep, SeqCst),
            &shared.done,
        );
        // SAFETY: no worker is joined (`active` is zero, the job is closed) and we hold `caller`.
        unsafe { *shared.job.get() = None };
        let worker_panicked = shared.panicked.swap(false, Relaxed);
        if let Err(payload) = own {
            resume_unwind(payload);
        }
        if worker_panicked {
            panic!("a job panicked on a cgnet-runtime worker thread");
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        drop(self.shared.locked());
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// A job that holds every part until all `n` have started (or a second
    /// passed), so that every worker joins.
    fn wait_for_all(started: &AtomicUsize, n: usize) {
        started.fetch_add(1, Ordering::SeqCst);
        let start = Instant::now();
        while started.load(Ordering::SeqCst) < n && start.elapsed() < Duration::from_secs(1) {
            std::thread::yield_now();
        }
    }

    #[test]
    fn each_index_runs_at_most_once_and_the_callers_always() {
        for threads in [2, 3, 8] {
            let pool = ThreadPool::new(threads).unwrap();
            for round in 0..200 {
                let hits: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
                pool.run(&|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert_eq!(hits[0].load(Ordering::Relaxed), 1, "round {round}");
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) <= 1), "round {round}");
                if round % 50 == 0 {
                    // Let the workers fall asleep, then wake them.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    #[test]
    fn workers_join_a_job_that_is_still_running() {
        let pool = ThreadPool::new(3).unwrap();
        // The caller and one worker per seat.
        let joining = 3.min(pool.shared.seats + 1);
        for _ in 0..20 {
            let started = AtomicUsize::new(0);
            pool.run(&|_| wait_for_all(&started, joining));
            // A worker may also join after another's call returned, before the job closed.
            assert!(started.load(Ordering::SeqCst) >= joining);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn concurrent_callers_take_turns() {
        let pool = ThreadPool::new(3).unwrap();
        let busy = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..200 {
                        let hits: [AtomicUsize; 3] = Default::default();
                        pool.run(&|i| {
                            // Parts of two jobs never overlap in time.
                            assert!(busy.fetch_add(1, Ordering::SeqCst) < 3);
                            hits[i].fetch_add(1, Ordering::Relaxed);
                            busy.fetch_sub(1, Ordering::SeqCst);
                        });
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) <= 1));
                        assert_eq!(hits[0].load(Ordering::Relaxed), 1);
                    }
                });
            }
        });
    }

    #[test]
    fn panics_reach_the_caller_and_the_pool_keeps_working() {
        let pool = ThreadPool::new(2).unwrap();
        for panicking in [0, 1] {
            let (started, finished) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let result = catch_unwind(AssertUnwindSafe(|| {
                pool.run(&|i| {
                    wait_for_all(&started, 2);
                    if i == panicking {
                        panic!("part {i} fails");
                    }
                    std::thread::sleep(Duration::from_millis(20));
                    finished.fetch_add(1, Ordering::SeqCst);
                })
            }));
            assert!(result.is_err(), "the panic of part {panicking} is propagated");
            // The other part ran to completion before `run` unwound.
            assert_eq!(finished.load(Ordering::SeqCst), 1);
        }
        let started = AtomicUsize::new(0);
        pool.run(&|_| wait_for_all(&started, 2));
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn more_threads_than_cores_still_work() {
        let pool = ThreadPool::new(available_threads() + 3).unwrap();
        let seats = pool.shared.seats;
        assert_eq!(seats, available_threads().saturating_sub(1).max(1));
        for _ in 0..20 {
            let (started, busy, most) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
            pool.run(&|_| {
                most.fetch_max(busy.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                wait_for_all(&started, seats + 1);
                busy.fetch_sub(1, Ordering::SeqCst);
            });
            // One thread per core at most, and the seats are taken.
            assert_eq!(most.load(Ordering::SeqCst), seats + 1);
        }
    }
}
