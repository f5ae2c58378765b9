//! The service lifecycle. (Being written.)
/// Service.
#[derive(Debug)]
pub struct Service;
/// Builder.
#[derive(Debug)]
pub struct ServiceBuilder;
pub(crate) fn init_logging() {}
