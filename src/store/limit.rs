//! The cap on every answer's body.
//!
//! The SDK reads a non-streaming answer (an XML listing, an error) whole
//! before parsing it; a server that sends a body that never ends would have
//! it buffer without bound. This interceptor limits every answer body the
//! SDK sees; past the cap, reading it fails, and the request counts as
//! unanswered. (A GET's body is read by `objects` itself, to a much smaller
//! cap derived from what the run wrote.)

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use aws_sdk_s3::primitives::SdkBody;
use http_body_util::Limited;

/// Limits every answer body to `cap` bytes.
#[derive(Debug)]
pub(super) struct CapAnswers {
    pub cap: usize,
}

impl Intercept for CapAnswers {
    fn name(&self) -> &'static str {
        "CapAnswers"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let cap = self.cap;
        let body = std::mem::replace(context.response_mut().body_mut(), SdkBody::taken());
        *context.response_mut().body_mut() =
            body.map(move |b| SdkBody::from_body_1_x(Limited::new(b, cap)));
        Ok(())
    }
}
