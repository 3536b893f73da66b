//! A fixed pool of worker threads for splitting kernel steps by rows.
//! Created once; `run` allocates nothing, so inference stays allocation-free.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::kernels::ParallelFor;

/// A job pointer with its lifetime erased; `ThreadPool::run` waits for every
/// worker to finish with it before returning, so it never dangles.
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize) + Sync + 'static));
// SAFETY: the pointee is `Sync`, and it outlives every use (see `Job`).
unsafe impl Send for Job {}

struct State {
    generation: u64,
    job: Option<Job>,
    remaining: usize,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    start: Condvar,
    done: Condvar,
}

/// `threads - 1` workers plus the calling thread.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// A pool that runs jobs on `threads` threads (the caller included).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { generation: 0, job: None, remaining: 0, shutdown: false }),
            start: Condvar::new(),
            done: Condvar::new(),
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
        let job = {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while state.generation == seen && !state.shutdown {
                state = shared.start.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.shutdown {
                return;
            }
            seen = state.generation;
            state.job
        };
        if let Some(Job(f)) = job {
            // SAFETY: `run` keeps the job alive until `remaining` reaches zero.
            unsafe { (*f)(index) };
        }
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.remaining -= 1;
        if state.remaining == 0 {
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
        // SAFETY: only the lifetime is erased; this function does not return
        // before every worker has finished calling the job.
        let erased: &(dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(job) };
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            state.job = Some(Job(erased));
            state.remaining = self.workers.len();
            state.generation += 1;
            self.shared.start.notify_all();
        }
        job(0);
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.remaining > 0 {
            state = self.shared.done.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.job = None;
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner()).shutdown = true;
        self.shared.start.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_index_runs_once_per_job() {
        let pool = ThreadPool::new(3).unwrap();
        for _ in 0..100 {
            let hits: [AtomicUsize; 3] = Default::default();
            pool.run(&|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }
}
