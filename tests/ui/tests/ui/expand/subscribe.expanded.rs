use rmicro::subscribe;
#[allow(clippy::unused_async)]
async fn on_message(name: String) -> rmicro::Result<()> {
    let _ = name;
    Ok(())
}
const _: () = {
    const __RMICRO_SUBSCRIBER: ::rmicro::__private::FreeSubscriber = ::rmicro::__private::FreeSubscriber {
        topic: "go.micro.srv.message",
        queue: ::rmicro::__private::None,
        service: ::rmicro::__private::None,
        name: "macrotest007::on_message",
        redelivery: ::rmicro::__private::None,
        handler: |raw| {
            ::std::boxed::Box::pin(async move {
                let event = ::rmicro::__private::decode_event::<String>(raw)?;
                on_message(event.into_payload())
                    .await
                    .map_err(::rmicro::__private::into_error)
            })
        },
    };
    #[allow(non_upper_case_globals)]
    const _: () = {
        static __INVENTORY: ::inventory::Node = ::inventory::Node {
            value: &{ __RMICRO_SUBSCRIBER },
            next: ::inventory::__private::UnsafeCell::new(
                ::inventory::__private::Option::None,
            ),
        };
        #[link_section = ".text.startup"]
        unsafe extern "C" fn __ctor() {
            unsafe { ::inventory::ErasedNode::submit(__INVENTORY.value, &__INVENTORY) }
        }
        #[used]
        #[link_section = ".init_array"]
        static __CTOR: unsafe extern "C" fn() = __ctor;
    };
    fn __rmicro_protobuf() -> ::rmicro::__private::Option<
        ::rmicro::__private::ProtoCodec,
    > {
        use ::rmicro::__private::{ViaNoProst as _, ViaProst as _};
        (&&::rmicro::__private::ProtoProbe::<String>::new()).protobuf_codec()
    }
    #[allow(non_upper_case_globals)]
    const _: () = {
        static __INVENTORY: ::inventory::Node = ::inventory::Node {
            value: &{ ::rmicro::__private::ProtobufType::probe(__rmicro_protobuf) },
            next: ::inventory::__private::UnsafeCell::new(
                ::inventory::__private::Option::None,
            ),
        };
        #[link_section = ".text.startup"]
        unsafe extern "C" fn __ctor() {
            unsafe { ::inventory::ErasedNode::submit(__INVENTORY.value, &__INVENTORY) }
        }
        #[used]
        #[link_section = ".init_array"]
        static __CTOR: unsafe extern "C" fn() = __ctor;
    };
};
fn main() {}
