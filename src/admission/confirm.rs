//! Phase 3 of a decision: before a cross-object finding denies, the objects it depends on are read
//! again from the API server, because the index is a watch cache that lags the writes it reports.

use crate::model::{Object, ObjectKey};
use futures::future::BoxFuture;

/// Reads objects as the API server has them now (a quorum read), for confirming a denial.
///
/// The kube source implements it with the client it watches through; the files source has no API
/// server and none (there the index is the truth). Tests implement it to hold, change or fail reads.
pub trait LiveRead: Send + Sync {
    /// Every key with its current object (`None`: it does not exist now). An error (unreachable,
    /// forbidden, an object that cannot be read) when any of them cannot be told.
    fn read<'a>(
        &'a self,
        keys: &'a [ObjectKey],
    ) -> BoxFuture<'a, Result<Vec<(ObjectKey, Option<Object>)>, String>>;
}
