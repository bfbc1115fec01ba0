//! Group commit: writers hand their write to one task, which takes whatever
//! is waiting (up to a batch) and commits it in one transaction — one fsync
//! for many requests — and answers each writer only once it is durable. A
//! conflict in a batch (a duplicate key, a replayed signature) is retried
//! one by one, so it fails only its own writer. The exchange's message log and citizens' API
//! submissions both write this way.

use std::sync::OnceLock;

use std::future::Future;
use std::pin::Pin;

use nara_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// A batch's write, in flight.
pub type BatchFuture<R> = Pin<Box<dyn Future<Output = Result<Vec<R>, StoreError>> + Send>>;

/// Writes a batch in one transaction, answering each item in order.
pub type WriteBatch<T, R> = fn(Store, Vec<T>) -> BatchFuture<R>;

/// Why a write was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// This write conflicts with what is stored (a duplicate key): only this
    /// writer's, found when its batch was retried one by one.
    #[error("{0}")]
    Conflict(String),
    /// This write claimed a signature already used: the request is a
    /// replay (found, like a conflict, by retrying its batch one by one).
    #[error("this signature was already used: a replay is refused")]
    Replayed,
    /// The writer task is gone (the node is shutting down).
    #[error("the writer stopped")]
    Stopped,
    /// The store failed; the batch was not committed.
    #[error("{0}")]
    Failed(String),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => WriteError::Conflict(m),
            StoreError::Replayed => WriteError::Replayed,
            e => WriteError::Failed(e.to_string()),
        }
    }
}

struct Pending<T, R> {
    item: T,
    done: oneshot::Sender<Result<R, WriteError>>,
}

/// One writer task per kind of write, started on first use.
pub struct GroupCommit<T, R> {
    sender: OnceLock<mpsc::Sender<Pending<T, R>>>,
    batch: usize,
    write: WriteBatch<T, R>,
}

impl<T: Clone + Send + 'static, R: Send + 'static> GroupCommit<T, R> {
    pub const fn new(batch: usize, write: WriteBatch<T, R>) -> Self {
        GroupCommit {
            sender: OnceLock::new(),
            batch,
            write,
        }
    }

    /// Writes `item` with whatever else is waiting; returns once committed.
    pub async fn write(&self, store: &Store, item: T) -> Result<R, WriteError> {
        let sender = self.sender.get_or_init(|| {
            let (tx, rx) = mpsc::channel(8_192);
            tokio::spawn(writer(store.clone(), rx, self.batch, self.write));
            tx
        });
        let (done, wait) = oneshot::channel();
        sender
            .send(Pending { item, done })
            .await
            .map_err(|_| WriteError::Stopped)?;
        wait.await.unwrap_or(Err(WriteError::Stopped))
    }
}

async fn writer<T: Clone, R>(
    store: Store,
    mut rx: mpsc::Receiver<Pending<T, R>>,
    max: usize,
    write: WriteBatch<T, R>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let items: Vec<T> = batch.iter().map(|p| p.item.clone()).collect();
        match write(store.clone(), items).await {
            Ok(results) => {
                for (p, r) in batch.into_iter().zip(results) {
                    let _ = p.done.send(Ok(r));
                }
            }
            Err(StoreError::Conflict(_) | StoreError::Replayed) if batch.len() > 1 => {
                for p in batch {
                    let one = write(store.clone(), vec![p.item.clone()]).await;
                    let r = match one {
                        Ok(mut rs) => rs
                            .pop()
                            .ok_or_else(|| WriteError::Failed("nothing written".into())),
                        Err(e) => Err(WriteError::from(e)),
                    };
                    let _ = p.done.send(r);
                }
            }
            Err(e) => {
                let e = WriteError::from(e);
                for p in batch {
                    let _ = p.done.send(Err(e.clone()));
                }
            }
        }
    }
}
