//! The `/system/logs` endpoint: [`LogHandler`] parses the request and queries the
//! backend, the shaping stage makes the backend's stream exactly what the request asked
//! for (`since`, `instance`, `tail`, the switch to live), and [`LogBody`] encodes it into
//! the response under the deadline. Beside it, the log viewer: a page
//! ([`viewer_response`]) that reads the endpoint from a browser, and the function list
//! it shows ([`LogHandler::functions`], served at [`FUNCTIONS_PATH`]).

mod body;
mod handler;
mod request_body;
mod shaping;
mod viewer;

pub(crate) use body::json_response;
pub use body::LogBody;
pub use handler::{LogHandler, MAX_BODY_BYTES};
pub use request_body::read_body;
pub use viewer::{viewer_response, FUNCTIONS_PATH, VIEWER_HTML};

/// The future of an endpoint's `Service::call`.
pub(crate) type ResponseFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<http::Response<LogBody>, std::convert::Infallible>>
            + Send,
    >,
>;

/// hyper's and tower's `Service` for an endpoint (a cheap `Clone` with an
/// `async fn handle(&self, http::Request<B>) -> http::Response<LogBody>`), so that it
/// mounts in hyper and axum alike. `[R: Bound]` are the endpoint's own parameters.
macro_rules! endpoint_services {
    ($endpoint:ty $(, [$($param:ident: $($bound:tt)+),*])?) => {
        impl<$($($param: $($bound)+,)*)? B> hyper::service::Service<http::Request<B>> for $endpoint
        where
            B: http_body::Body + Send + 'static,
            B::Data: Send,
            B::Error: Into<$crate::BoxError>,
        {
            type Response = http::Response<$crate::server::LogBody>;
            type Error = std::convert::Infallible;
            type Future = $crate::server::ResponseFuture;

            fn call(&self, req: http::Request<B>) -> Self::Future {
                let endpoint = self.clone();
                Box::pin(async move { Ok(endpoint.handle(req).await) })
            }
        }

        impl<$($($param: $($bound)+,)*)? B> tower_service::Service<http::Request<B>> for $endpoint
        where
            B: http_body::Body + Send + 'static,
            B::Data: Send,
            B::Error: Into<$crate::BoxError>,
        {
            type Response = http::Response<$crate::server::LogBody>;
            type Error = std::convert::Infallible;
            type Future = $crate::server::ResponseFuture;

            fn poll_ready(
                &mut self,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: http::Request<B>) -> Self::Future {
                hyper::service::Service::call(self, req)
            }
        }
    };
}
pub(crate) use endpoint_services;
