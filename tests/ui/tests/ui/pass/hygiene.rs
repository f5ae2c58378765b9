// Generated code names only absolute paths: it compiles next to user items that shadow the
// prelude and the names it uses, inside a module without the implicit prelude.
#![deny(warnings)]
#![allow(non_camel_case_types, dead_code)]

mod core {}
mod std {}

struct Result;
struct Option;
struct Ok;
struct Err;
struct Some;
struct None;
struct Box;
struct Arc;
struct Into;
struct Duration;
struct Routes;
struct Event;
struct ServiceBuilder;
struct Handlers;
struct FreeSubscriber;

mod isolated {
    #![no_implicit_prelude]

    use ::rmicro::{handlers, service, subscribe};

    #[derive(::serde::Serialize, ::serde::Deserialize)]
    pub struct Request {
        name: ::std::string::String,
    }

    #[service(
        name = "hygiene",
        ttl = "1m",
        interval = "500ms",
        metadata(kind = "test")
    )]
    pub struct Hygiene;

    #[handlers]
    impl Hygiene {
        pub async fn echo(&self, req: Request) -> ::rmicro::Result<Request> {
            ::core::result::Result::Ok(req)
        }

        #[subscribe("hygiene.events", queue = "q")]
        async fn this(&self, event: ::rmicro::Event<Request>) -> ::rmicro::Result<()> {
            let _ = event;
            ::core::result::Result::Ok(())
        }
    }

    // Named like the locals of the generated code.
    #[subscribe("hygiene.raw")]
    pub async fn event(raw: Request) -> ::rmicro::Result<()> {
        let _ = raw;
        ::core::result::Result::Ok(())
    }

    #[subscribe("hygiene.error")]
    pub async fn error(error: Request) -> ::rmicro::Result<()> {
        let _ = error;
        ::core::result::Result::Ok(())
    }
}

#[rmicro::main]
async fn main() {
    let serve = isolated::Hygiene.run();
    drop(serve);
}
