//! In-process registry with TTL expiry, for tests. (Being written.)
