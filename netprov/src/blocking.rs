//! Runs blocking work (libnftables, nfnetlink, OVSDB) on tokio's blocking pool.

use crate::error::OpError;

/// Runs a blocking call (libnftables, nfnetlink: each enters its netns on a thread of
/// its own and joins it) off the async runtime's thread.
pub async fn blocking<T: Send + 'static>(
    op: impl std::fmt::Display,
    f: impl FnOnce() -> Result<T, OpError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| OpError::new(op.to_string(), "worker thread panicked"))?
}
