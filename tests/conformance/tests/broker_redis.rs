//! The broker suite against the redis broker on a real redis-server on loopback (one server
//! per check; Redis starts in milliseconds).
#![cfg(feature = "redis")]

use std::sync::Arc;

use rmicro::broker::redis::{RedisBroker, RedisOptions};
use rmicro_conformance::broker::OnServer;
use rmicro_conformance::servers::redis::Redis;

fn fixture() -> OnServer<Redis> {
    OnServer::new("redis-server", Redis::start(), |server| {
        Ok(Arc::new(RedisBroker::new(RedisOptions::with_address(
            &server.url(),
        ))?))
    })
}

rmicro_conformance::broker_suite!(fixture());
rmicro_conformance::broker_restart_check!(fixture());
