//! Threads of their own for rendering, fed through one queue: CPU work kept
//! off the async threads (DESIGN.md) without a hand-over per request. A
//! rendering thread that has finished one request takes the next waiting
//! one at once; only an idle thread sleeps and is woken. (Handing each
//! request to tokio's blocking pool woke a sleeping thread and switched
//! tasks every time, one of the larger costs of accepting under load.)
//!
//! One thread per core: a burst of heavy requests waits in the queue
//! instead of taking more threads. A request whose caller has gone while it
//! waited is skipped; a panic fails its own request, not the thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

static QUEUE: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

/// The work could not be done: its thread panicked, or no thread runs.
#[derive(Debug, thiserror::Error)]
#[error("the rendering work was lost (a panic, or no rendering thread)")]
pub struct Lost;

/// Runs `work` on a rendering thread and waits for its answer.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Lost> {
    let (answer, answered) = oneshot::channel();
    let job: Job = Box::new(move || {
        if !answer.is_closed() {
            let _ = answer.send(work());
        }
    });
    spawn(job)?;
    answered.await.map_err(|_| Lost)
}

/// Runs `work` on a rendering thread without waiting for it: the work
/// answers whoever waits for it itself (and, dropped after a panic, tells
/// them so by dropping its channels).
pub fn spawn(work: impl FnOnce() + Send + 'static) -> Result<(), Lost> {
    queue().send(Box::new(work)).map_err(|_| Lost)
}

fn queue() -> &'static mpsc::Sender<Job> {
    QUEUE.get_or_init(|| {
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        for n in 0..cores {
            let jobs = jobs.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("mailbridge-render-{n}"))
                .spawn(move || serve(&jobs));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a rendering thread");
            }
        }
        queue
    })
}

fn serve(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let next = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = next else { return };
        // The panic is reported by the panic hook; the job's caller sees
        // its answer channel dropped.
        let _ = catch_unwind(AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_each_caller_and_survives_a_panic() {
        let answers: Vec<_> = (0..64).map(|n| run(move || n * 2)).collect();
        for (n, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.await.unwrap(), n * 2);
        }
        let panicked = run(|| -> u8 { panic!("a template helper bug") }).await;
        assert!(panicked.is_err());
        // Every thread still serves.
        let after: Vec<_> = (0..16).map(|n| run(move || n + 1)).collect();
        for (n, answer) in after.into_iter().enumerate() {
            assert_eq!(answer.await.unwrap(), n + 1);
        }
    }

    #[tokio::test]
    async fn work_whose_caller_has_gone_is_skipped() {
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        // Hold every thread so that the next jobs wait in the queue.
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let mut holders = Vec::new();
        for _ in 0..cores {
            let gate = gate.clone();
            holders.push(tokio::spawn(run(move || {
                let _ = gate.lock().unwrap().recv();
            })));
        }
        // Wait until every thread holds a job (none is left in the queue).
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // Polled once, its job is queued; then its caller goes.
        let counted = ran.clone();
        let mut queued = Box::pin(run(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        assert!(futures::poll!(queued.as_mut()).is_pending());
        drop(queued);
        for _ in 0..cores {
            release.send(()).unwrap();
        }
        for holder in holders {
            holder.await.unwrap().unwrap();
        }
        assert_eq!(run(|| ()).await.ok(), Some(()));
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
