//! What the wire said: the HTTP status of every answer, recorded as it
//! arrives.
//!
//! The SDK hands a successful call's output without its status, and an
//! `Outcome` must never hold a status the server did not send (a 200 to a
//! ranged GET is not a 206 because a Content-Range header came with it).
//! This interceptor, on every request of the client, writes the status of
//! the answer into the slot of the call that awaits it; [`recording`] opens
//! that slot around one call (a task-local: the SDK runs its interceptors
//! inside the future the caller awaits).

use std::cell::Cell;
use std::future::Future;

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;

tokio::task_local! {
    static STATUS: Cell<Option<u16>>;
}

/// Records the status of every answer into the awaiting call's slot.
#[derive(Debug)]
pub(super) struct RecordStatus;

impl Intercept for RecordStatus {
    fn name(&self) -> &'static str {
        "RecordStatus"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let status = context.response().status().as_u16();
        // Outside `recording` (set-up and clean-up calls) there is no slot.
        let _ = STATUS.try_with(|s| s.set(Some(status)));
        Ok(())
    }
}

/// Awaits `call` and returns its output with the status of the last answer
/// it received (`None` when no answer came).
pub(super) async fn recording<F: Future>(call: F) -> (F::Output, Option<u16>) {
    // On the heap: an SDK call's future is large, and moving it into the
    // scope by value overflows a worker thread's stack in debug builds.
    let call = Box::pin(call);
    STATUS
        .scope(Cell::new(None), async move {
            let out = call.await;
            (out, STATUS.with(Cell::get))
        })
        .await
}
