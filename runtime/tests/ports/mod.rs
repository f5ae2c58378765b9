//! Free loopback ports for the servers the tests start (shared by the test files, as the
//! conformance crate's `servers::free_port`, which runtime tests cannot depend on).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

/// A free TCP port on 127.0.0.1 (bound, then released for a server to take), never one this
/// test binary handed out before: servers started by tests running side by side would
/// otherwise be given the same port between its release and their bind.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if GIVEN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(port)
        {
            return port;
        }
    }
}
