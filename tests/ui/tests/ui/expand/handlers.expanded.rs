use rmicro::{Event, handlers};
pub struct StudentService;
impl StudentService {
    /// A student's grade, by name.
    #[allow(clippy::unused_async)]
    pub async fn get_grade(&self, name: String) -> rmicro::Result<u32> {
        Ok(u32::try_from(name.len()).unwrap_or(0) * 10)
    }
    #[allow(clippy::unused_async)]
    async fn on_graded(&self, event: Event<u32>) -> rmicro::Result<()> {
        let _grade = *event.payload();
        Ok(())
    }
    fn helper(&self) {}
}
impl ::rmicro::__private::Handlers for StudentService {
    fn routes() -> ::rmicro::__private::Routes<Self> {
        use ::rmicro::__private::{DescribeFields as _, DescribeName as _};
        ::rmicro::__private::assert_decode::<String>();
        ::rmicro::__private::assert_encode::<u32>();
        ::rmicro::__private::assert_decode::<u32>();
        use ::rmicro::__private::{ViaNoProst as _, ViaProst as _};
        ::rmicro::__private::register_protobuf(
            (&&::rmicro::__private::ProtoProbe::<String>::new()).protobuf_codec(),
        );
        ::rmicro::__private::register_protobuf(
            (&&::rmicro::__private::ProtoProbe::<u32>::new()).protobuf_codec(),
        );
        ::rmicro::__private::Routes::new()
            .endpoint::<
                String,
                u32,
                _,
                _,
            >(
                "StudentService.GetGrade",
                (&&::rmicro::__private::Describer::<String>::new()).value(),
                (&&::rmicro::__private::Describer::<u32>::new()).value(),
                |this: ::rmicro::__private::Arc<Self>, req: String| async move {
                    this.get_grade(req).await.map_err(::rmicro::__private::into_error)
                },
            )
            .description("StudentService.GetGrade", "A student's grade, by name.")
            .subscription::<
                u32,
                _,
                _,
            >(
                "students.graded",
                ::rmicro::__private::Some("graders"),
                |
                    this: ::rmicro::__private::Arc<Self>,
                    event: ::rmicro::__private::Event<u32>|
                async move {
                    this.on_graded(event).await.map_err(::rmicro::__private::into_error)
                },
            )
    }
}
fn main() {}
