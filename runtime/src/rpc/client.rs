//! The RPC client. (Being written.)
/// Client.
#[derive(Debug, Clone)]
pub struct Client;
/// Options.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions;
/// Per call options.
#[derive(Debug, Clone, Default)]
pub struct CallOptions;
