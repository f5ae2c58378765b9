use rmicro::service;
pub struct StudentService {
    pub classes: Vec<String>,
}
impl StudentService {
    /// The builder of the `student_service` service, set up as `#[service]` declares it.
    ///
    /// [`Self::run`] runs it; call it yourself to change settings in code, or to
    /// attach a handler value and routes of your own.
    #[must_use]
    pub fn service_builder() -> ::rmicro::__private::ServiceBuilder {
        ::rmicro::__private::Service::builder("student_service")
            .version("v1.0.0")
            .registry("mdns")
            .ttl(::rmicro::__private::Duration::from_secs(10))
            .interval(::rmicro::__private::Duration::from_secs(5))
    }
    /// Runs this value as the `student_service` service until the process gets SIGINT or SIGTERM.
    ///
    /// Settings from flags and `MICRO_*` environment variables override the
    /// attribute's. The endpoints are those of the `#[handlers]` impl block, if any,
    /// plus the `#[subscribe]` functions of this program.
    ///
    /// # Errors
    ///
    /// Fails when the configuration is invalid, or when the server, the registry or
    /// the broker cannot be started.
    pub async fn run(self) -> ::rmicro::__private::Result<()> {
        self.into_builder().run().await
    }
    /// Starts this value as the service and returns the running service, without
    /// reading flags or the environment and without waiting for a signal: for tests,
    /// and for programs that stop the service themselves with `Service::stop`.
    ///
    /// # Errors
    ///
    /// Fails when the server, the registry or the broker cannot be started.
    pub async fn start(
        self,
    ) -> ::rmicro::__private::Result<::rmicro::__private::Service> {
        self.into_builder().start().await
    }
    /// The builder of [`Self::service_builder`] with this value's endpoints and
    /// subscriptions attached: what [`Self::run`] and [`Self::start`] use.
    #[must_use]
    pub fn into_builder(self) -> ::rmicro::__private::ServiceBuilder {
        use ::rmicro::__private::{ViaHandlers as _, ViaNoHandlers as _};
        let routes = (&&::rmicro::__private::RoutesOf::<Self>::new()).routes();
        Self::service_builder().handler(self, routes)
    }
}
fn main() {}
