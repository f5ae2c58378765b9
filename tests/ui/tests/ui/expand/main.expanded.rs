fn main() -> rmicro::Result<()> {
    async fn main() -> rmicro::Result<()> {
        Ok(())
    }
    ::rmicro::__private::init();
    ::rmicro::__private::tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
        .block_on(async {
            let output = main().await;
            ::rmicro::__private::finish().await;
            output
        })
}
