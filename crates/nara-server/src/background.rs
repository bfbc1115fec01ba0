//! A thread for work that can wait: continuous backup's reading, sealing
//! and writing of the log. It runs at a lower scheduling priority than the
//! threads that answer requests, so that a burst of it (a busy second's log
//! is 12 MB to read, seal and write) does not hold requests behind it on a
//! machine with few cores; when a core is idle it runs at full speed.
//!
//! Jobs run one at a time, in the order they were given; a job that panics
//! fails alone, and the thread goes on. The thread ends when the last handle
//! is dropped.

use std::sync::mpsc;

/// How much lower the thread's scheduling priority is than the process's
/// (Linux `nice`, up to 19, the lowest). Ten steps lower the scheduler
/// weighs it about a tenth of a request thread: it still gets CPU under
/// sustained load, so the backup keeps up, only later in each moment.
const NICE: i32 = 10;
const NICEST: i32 = 19;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the thread; clones share it.
#[derive(Clone, Debug)]
pub struct Background {
    jobs: mpsc::Sender<Job>,
    name: std::sync::Arc<str>,
}

/// A job did not finish: it panicked, or the thread is gone.
#[derive(Debug, thiserror::Error)]
#[error("a job on the background thread {0} did not finish")]
pub struct Unfinished(std::sync::Arc<str>);

impl Background {
    /// Starts a thread named `name` at the lower priority.
    pub fn start(name: &str) -> std::io::Result<Background> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                lower_priority();
                while let Ok(job) = queue.recv() {
                    job();
                }
            })?;
        Ok(Background {
            jobs,
            name: name.into(),
        })
    }

    /// Runs `work` on the thread and waits for its result without holding
    /// the calling task's thread.
    pub async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, Unfinished> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = done.send(outcome);
        });
        let unfinished = || Unfinished(self.name.clone());
        self.jobs.send(job).map_err(|_| unfinished())?;
        result
            .await
            .map_err(|_| unfinished())?
            .map_err(|_| unfinished())
    }
}

/// Lowers the calling thread's priority by [`NICE`] (on Linux a thread has
/// its own nice value, inherited from the thread that made it). Relative,
/// so a node started with `nice` keeps the same order; only ever lower,
/// which needs no privilege. Failing is harmless: the work runs at the
/// node's priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let me = Some(rustix::thread::gettid());
        let lowered = getpriority_process(me)
            .and_then(|nice| setpriority_process(me, (nice + NICE).min(NICEST)));
        if let Err(e) = lowered {
            tracing::debug!(error = %e, "the background thread keeps the node's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_at_the_lower_priority() {
        let lane = Background::start("nara-test-lane").unwrap();
        let mut seen = Vec::new();
        for i in 0..3 {
            seen.push(lane.run(move || i * 2).await.unwrap());
        }
        assert_eq!(seen, [0, 2, 4]);
        #[cfg(target_os = "linux")]
        {
            let nice_here =
                || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
            let (ours, its) = (nice_here(), lane.run(nice_here).await.unwrap());
            assert_eq!(its, (ours + NICE).min(NICEST));
        }
    }

    #[tokio::test]
    async fn a_job_that_panics_fails_alone() {
        let lane = Background::start("nara-test-lane").unwrap();
        let panicked = lane.run(|| -> u8 { panic!("a job failed") }).await;
        assert!(panicked.is_err());
        assert_eq!(lane.run(|| 1).await.unwrap(), 1);
    }
}
