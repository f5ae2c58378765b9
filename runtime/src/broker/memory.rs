//! In-process broker, for tests. (Being written.)
