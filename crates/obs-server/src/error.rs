//! One mapping from [`ErrorKind`] to HTTP statuses, gRPC codes and each API family's error body.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use obs_core::error::{Classify, ErrorKind};
use prost::Message;

/// Which upstream API an error is answered in the dialect of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFamily {
    /// Prometheus: `{"status":"error","errorType":"bad_data","error":"…"}`.
    Prometheus,
    /// Loki: the message as plain text.
    Loki,
    /// Plain text, as Prometheus' remote_write receiver answers.
    PlainText,
    /// Tempo: the message as plain text.
    Tempo,
    /// Alertmanager API v2: `{"code":400,"message":"…"}`.
    Alertmanager,
    /// OTLP over HTTP with protobuf bodies: a `google.rpc.Status` message.
    OtlpProtobuf,
    /// OTLP over HTTP with JSON bodies: `google.rpc.Status` as JSON.
    OtlpJson,
}

/// An error on its way to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The dialect of the answer.
    pub family: ApiFamily,
    /// The class of the error.
    pub kind: ErrorKind,
    /// The message for the client.
    pub message: String,
    /// `Retry-After`, for retryable errors.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error of the given kind.
    pub fn new(family: ApiFamily, kind: ErrorKind, message: impl Into<String>) -> ApiError {
        let retry_after = match kind {
            ErrorKind::Overloaded | ErrorKind::Unavailable => Some(Duration::from_secs(5)),
            _ => None,
        };
        ApiError {
            family,
            kind,
            message: message.into(),
            retry_after,
        }
    }

    /// Classifies a library error; internal faults are logged here and described to the client
    /// only vaguely.
    pub fn from_error(family: ApiFamily, error: &dyn Classify) -> ApiError {
        let kind = error.kind();
        if kind == ErrorKind::Internal {
            tracing::error!(error = %error, "internal error while serving a request");
        }
        ApiError {
            family,
            kind,
            message: error.client_message(),
            retry_after: error.retry_after(),
        }
    }
}

/// The HTTP status of an error kind. Prometheus' codes where Prometheus has them
/// (`web/api/v1/api.go`: bad_data 400, execution 422, canceled 499, timeout 503, internal 500,
/// not_found 404, unavailable 503).
pub fn http_status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadInput => StatusCode::BAD_REQUEST,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable | ErrorKind::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Execution => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The gRPC code of an error kind. OTLP clients retry `UNAVAILABLE` and never retry
/// `INVALID_ARGUMENT`; `RESOURCE_EXHAUSTED` without retry info is not retried either.
pub fn grpc_code(kind: ErrorKind) -> tonic::Code {
    match kind {
        ErrorKind::BadInput | ErrorKind::UnsupportedMediaType => tonic::Code::InvalidArgument,
        ErrorKind::NotFound => tonic::Code::NotFound,
        ErrorKind::TooLarge => tonic::Code::ResourceExhausted,
        ErrorKind::Overloaded | ErrorKind::Unavailable => tonic::Code::Unavailable,
        ErrorKind::Execution => tonic::Code::FailedPrecondition,
        ErrorKind::Timeout => tonic::Code::DeadlineExceeded,
        ErrorKind::Canceled => tonic::Code::Cancelled,
        ErrorKind::Internal => tonic::Code::Internal,
    }
}

/// Prometheus' `errorType` for an error kind.
pub fn prometheus_error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadInput | ErrorKind::UnsupportedMediaType | ErrorKind::TooLarge => "bad_data",
        ErrorKind::NotFound => "not_found",
        ErrorKind::Overloaded | ErrorKind::Unavailable => "unavailable",
        ErrorKind::Execution => "execution",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Canceled => "canceled",
        ErrorKind::Internal => "internal",
    }
}

/// A `tonic::Status` for an error kind, for the gRPC services.
pub fn grpc_status(kind: ErrorKind, message: impl Into<String>) -> tonic::Status {
    tonic::Status::new(grpc_code(kind), message)
}

/// `google.rpc.Status`, the error body of OTLP over HTTP.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = http_status(self.kind);
        let mut response = match self.family {
            ApiFamily::Prometheus => {
                let body = serde_json::json!({
                    "status": "error",
                    "errorType": prometheus_error_type(self.kind),
                    "error": self.message,
                });
                (status, axum::Json(body)).into_response()
            }
            ApiFamily::Loki | ApiFamily::Tempo | ApiFamily::PlainText => {
                let mut text = self.message;
                text.push('\n');
                (
                    status,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    text,
                )
                    .into_response()
            }
            ApiFamily::Alertmanager => {
                let body = serde_json::json!({ "code": status.as_u16(), "message": self.message });
                (status, axum::Json(body)).into_response()
            }
            ApiFamily::OtlpProtobuf => {
                let body = RpcStatus {
                    code: grpc_code(self.kind) as i32,
                    message: self.message,
                }
                .encode_to_vec();
                (status, [(header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
            }
            ApiFamily::OtlpJson => {
                let body =
                    serde_json::json!({ "code": grpc_code(self.kind) as i32, "message": self.message });
                (status, axum::Json(body)).into_response()
            }
        };
        if let Some(retry_after) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_of(response: Response) -> Vec<u8> {
        response.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn prometheus_errors_use_the_envelope_and_codes_of_prometheus() {
        let cases = [
            (ErrorKind::BadInput, 400, "bad_data"),
            (ErrorKind::Execution, 422, "execution"),
            (ErrorKind::Canceled, 499, "canceled"),
            (ErrorKind::Timeout, 503, "timeout"),
            (ErrorKind::Internal, 500, "internal"),
            (ErrorKind::NotFound, 404, "not_found"),
            (ErrorKind::Unavailable, 503, "unavailable"),
        ];
        for (kind, code, error_type) in cases {
            let response = ApiError::new(ApiFamily::Prometheus, kind, "what went wrong").into_response();
            assert_eq!(response.status().as_u16(), code, "{kind:?}");
            let body: serde_json::Value = serde_json::from_slice(&body_of(response).await).unwrap();
            assert_eq!(
                body,
                serde_json::json!({"status": "error", "errorType": error_type, "error": "what went wrong"})
            );
        }
    }

    #[tokio::test]
    async fn retryable_errors_carry_retry_after() {
        let response = ApiError::new(ApiFamily::Loki, ErrorKind::Overloaded, "slow down").into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert_eq!(body_of(response).await, b"slow down\n");
        let response = ApiError::new(ApiFamily::Loki, ErrorKind::BadInput, "no").into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }

    #[tokio::test]
    async fn otlp_errors_are_google_rpc_status() {
        let response = ApiError::new(ApiFamily::OtlpProtobuf, ErrorKind::TooLarge, "too big").into_response();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let status = RpcStatus::decode(body_of(response).await.as_slice()).unwrap();
        assert_eq!(status.code, tonic::Code::ResourceExhausted as i32);
        assert_eq!(status.message, "too big");
        let response = ApiError::new(ApiFamily::OtlpJson, ErrorKind::BadInput, "bad").into_response();
        let body: serde_json::Value = serde_json::from_slice(&body_of(response).await).unwrap();
        assert_eq!(body, serde_json::json!({"code": 3, "message": "bad"}));
    }
}
