// Attribute arguments and types passed through `macro_rules!` arrive wrapped in invisible
// groups; the macros see through them.
#![deny(warnings)]

use rmicro::prelude::*;

#[derive(Serialize, Deserialize)]
struct Ping {
    n: u32,
}

macro_rules! service {
    ($ty:ident, $name:expr, $ttl:expr, $request:ty) => {
        #[service(name = $name, ttl = $ttl)]
        struct $ty;

        #[handlers]
        impl $ty {
            pub async fn ping(&self, req: $request) -> rmicro::Result<$request> {
                Ok(req)
            }
        }
    };
}

service!(PingService, "ping_service", 60, Ping);

#[rmicro::main]
async fn main() {
    drop(PingService.run());
}
