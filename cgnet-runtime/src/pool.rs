//! A fixed pool of worker threads for splitting kernel steps by rows.
//! Created once; `run` allocates nothing, so inference stays allocation-free.
//!
//! A model runs ~100 short steps per inference, so hand-offs must be cheap:
//! workers spin briefly on a generation counter before sleeping on a condvar,
//! and the caller spins until the workers are done.

use std::cell::UnsafeCell;
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
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is only written while no worker reads it (see `run`), and the
// generation / remaining counters order those accesses (release / acquire).
unsafe impl Sync for Shared {}
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
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new().name(format!("cgnet-worker-{index}")).spawn(move || worker(&shared, index))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self { shared, workers })
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
            // SAFETY: `run` keeps the job alive until `remaining` reaches zero.
            unsafe { (*f)(index) };
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
        // SAFETY: only the lifetime is erased; this function does not return
        // before every worker has finished calling the job.
        let erased: &(dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(job) };
        let shared = &*self.shared;
        // SAFETY: every worker finished the previous job (remaining was zero).
        unsafe { *shared.job.get() = Some(Job(erased)) };
        shared.remaining.store(self.workers.len(), Ordering::Relaxed);
        shared.generation.fetch_add(1, Ordering::Release);
        drop(shared.lock.lock().unwrap_or_else(|e| e.into_inner()));
        shared.wake.notify_all();
        job(0);
        let mut spins = 0u32;
        while shared.remaining.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins % 1024 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
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
}
