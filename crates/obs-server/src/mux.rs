//! One service for HTTP/1.1, HTTP/2 and gRPC on the same port.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use http::Request;
use tower::ServiceExt;
use tower::util::Oneshot;

/// Routes a request to the gRPC services when its `content-type` is `application/grpc`
/// (`application/grpc+proto`, …), and to the HTTP routers otherwise.
#[derive(Debug, Clone)]
pub struct Mux {
    http: Router,
    grpc: Router,
}

impl Mux {
    pub(crate) fn new(http: Router, grpc: Router) -> Mux {
        Mux { http, grpc }
    }

    /// Wraps the mux in a router, which is what `axum::serve` and tests take.
    pub fn into_router(self) -> Router {
        Router::new().fallback_service(self)
    }
}

/// Whether a request is gRPC.
pub(crate) fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

impl tower::Service<Request<Body>> for Mux {
    type Response = Response;
    type Error = Infallible;
    type Future = Oneshot<Router, Request<Body>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if is_grpc(&request) {
            self.grpc.clone().oneshot(request)
        } else {
            self.http.clone().oneshot(request)
        }
    }
}
