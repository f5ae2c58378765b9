//! The RPC server. (Being written.)
