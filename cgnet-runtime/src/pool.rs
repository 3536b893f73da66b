//! A fixed pool of worker threads for splitting kernel steps by rows.
//! Created once; `run` allocates nothing, so inference stays allocation-free.
//!
//! A model runs ~100 short steps per inference, so hand-offs must be cheap:
//! workers spin briefly on a generation counter before sleeping on a condvar,
//! and the caller spins until the workers are done.
//!
//! Safety contract: the pool is `Sync`, and concurrent callers of `run` take
//! turns (one job at a time, behind a lock). A job that panics, on the caller
//! or on a worker, is propagated to the caller of `run` only after every worker
//! is done with the job, so no worker ever calls a closure that has gone.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::kernels::ParallelFor;

/// Spins before a worker sleeps (about 20-50 µs): longer than the gap between two steps.
const SPINS: u32 = 20_000;

/// A job pointer with its lifetime erased; `ThreadPool::run` waits for every
/// worker to finish with it before returning, so it never dangles.
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize) + Sync + 'static));

struct Shared {
    generation: AtomicU64,
    remaining: AtomicUsize,
    shutdown: AtomicBool,
    /// Written by `run` before it bumps `generation`; read by workers after they see the bump.
    job: UnsafeCell<Option<Job>>,
    /// Set by a worker whose call of the job panicked; `run` reports it.
    panicked: AtomicBool,
    /// Held by `run` for a whole job: concurrent callers take turns.
    caller: Mutex<()>,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is only written by the one `run` holding `caller`, while no
// worker reads it, and the generation / remaining counters order those accesses
// (release / acquire). The job it points to is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; nothing in `Shared` is tied to the thread that made it.
unsafe impl Send for Shared {}

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
/// assert_eq!(calls.load(Ordering::Relaxed), 3); // job(0) on the caller, 1 and 2 on the workers
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// A pool that runs jobs on `threads` threads (the caller included).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            remaining: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            panicked: AtomicBool::new(false),
            caller: Mutex::new(()),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut pool = Self { shared, workers: Vec::with_capacity(threads.saturating_sub(1)) };
        for index in 1..threads.max(1) {
            let shared = Arc::clone(&pool.shared);
            // On failure, dropping `pool` stops the workers already started.
            let worker = std::thread::Builder::new()
                .name(format!("cgnet-worker-{index}"))
                .spawn(move || worker(&shared, index))?;
            pool.workers.push(worker);
        }
        Ok(pool)
    }
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0;
    loop {
        let mut spins = 0;
        loop {
            if shared.shutdown.load(Ordering::Acquire) {
                return;
            }
            let generation = shared.generation.load(Ordering::Acquire);
            if generation != seen {
                seen = generation;
                break;
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                let guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
                if shared.generation.load(Ordering::Acquire) == seen && !shared.shutdown.load(Ordering::Acquire) {
                    drop(shared.wake.wait(guard).unwrap_or_else(|e| e.into_inner()));
                }
            }
        }
        // SAFETY: the job was written before the generation bump we acquired, and
        // `run` does not touch it again before `remaining` reaches zero.
        if let Some(Job(f)) = unsafe { *shared.job.get() } {
            // SAFETY: `run` keeps the job alive until `remaining` reaches zero,
            // even when its own part panics.
            let call = || unsafe { (*f)(index) };
            if catch_unwind(AssertUnwindSafe(call)).is_err() {
                shared.panicked.store(true, Ordering::Relaxed);
            }
        }
        shared.remaining.fetch_sub(1, Ordering::Release);
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
        // unwinds before every worker has finished calling the job (job(0) runs
        // under `catch_unwind`, and the wait below always runs).
        let erased: &(dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(job) };
        // SAFETY: every worker finished the previous job (remaining was zero).
        unsafe { *shared.job.get() = Some(Job(erased)) };
        shared.remaining.store(self.workers.len(), Ordering::Relaxed);
        shared.generation.fetch_add(1, Ordering::Release);
        drop(shared.lock.lock().unwrap_or_else(|e| e.into_inner()));
        shared.wake.notify_all();
        let own = catch_unwind(AssertUnwindSafe(|| job(0)));
        let mut spins = 0u32;
        while shared.remaining.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: every worker is done with the job (remaining is zero) and we hold `caller`.
        unsafe { *shared.job.get() = None };
        let worker_panicked = shared.panicked.swap(false, Ordering::Relaxed);
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
        self.shared.shutdown.store(true, Ordering::Release);
        drop(self.shared.lock.lock().unwrap_or_else(|e| e.into_inner()));
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_index_runs_once_per_job() {
        let pool = ThreadPool::new(3).unwrap();
        for round in 0..200 {
            let hits: [AtomicUsize; 3] = Default::default();
            pool.run(&|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "round {round}");
            if round % 50 == 0 {
                // Let the workers fall asleep, then wake them.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
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
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                    }
                });
            }
        });
    }

    #[test]
    fn panics_reach_the_caller_and_the_pool_keeps_working() {
        let pool = ThreadPool::new(3).unwrap();
        for panicking in [0, 2] {
            let finished = AtomicUsize::new(0);
            let result = catch_unwind(AssertUnwindSafe(|| {
                pool.run(&|i| {
                    if i == panicking {
                        panic!("part {i} fails");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    finished.fetch_add(1, Ordering::SeqCst);
                })
            }));
            assert!(result.is_err(), "the panic of part {panicking} is propagated");
            // The other parts ran to completion before `run` unwound.
            assert_eq!(finished.load(Ordering::SeqCst), 2);
        }
        let hits = AtomicUsize::new(0);
        pool.run(&|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 3);
    }
}
