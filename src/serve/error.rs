//! Every failure a request can meet, answered as JSON: `{"error": ..., "code": ..., "field": ...}`
//! with a 4xx (the request's fault) or 5xx (the server's) status.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::batcher::Rejected;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// A stable machine-readable code, e.g. `invalid_field`, `queue_full`.
    pub code: &'static str,
    /// The request field at fault, as a path (`inputs[0].shape`, `samples[2].values.genomics.TP53`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// Seconds for a Retry-After header (503 when the queue is full).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: message.into(),
                code,
                field: None,
            },
            retry_after: None,
        }
    }

    /// A field of the request is wrong: 422 naming it.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {}", message.into()),
        );
        e.body.field = Some(field);
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The same error for a request that carries its sample under another path (`samples[0]`
    /// of /predict is `sample` in /explain).
    pub fn renamed(mut self, from: &str, to: &str) -> Self {
        self.body.error = self.body.error.replacen(from, to, 1);
        self.body.field = self.body.field.map(|f| f.replacen(from, to, 1));
        self
    }

    /// Adds a Retry-After header of `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }
}

impl From<Rejected> for ApiError {
    fn from(why: Rejected) -> Self {
        let message = why.to_string();
        match why {
            Rejected::QueueFull { .. } => Self {
                retry_after: Some(1),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "queue_full", message)
            },
            Rejected::DeadlineExceeded => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded", message)
            }
            Rejected::BadPriority { .. } => Self::field("priority", message),
            Rejected::ShuttingDown => Self {
                retry_after: Some(1),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            },
            Rejected::Failed(_) => Self::internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A JSON body whose every failure is an [`ApiError`]: 413 over the size limit, 400 when it is
/// not JSON, 422 naming the field when it is JSON of the wrong shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A request body read whole, for handlers that parse it with names borrowed from the text
/// ([`parse_json`]) rather than copied; over the size limit it answers 413 as [`JsonBody`] does.
pub struct RawJson(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(req, state).await.map(RawJson)
    }
}

/// How long a request's body may take to arrive, set on the router.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

/// The whole body, within the size limit and the body deadline: a client that sends its
/// headers and then trickles (or withholds) the body gets 408 and loses the connection.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    let deadline = req.extensions().get::<BodyTimeout>().copied();
    let read = axum::body::Bytes::from_request(req, state);
    let bytes = match deadline {
        Some(BodyTimeout(limit)) => tokio::time::timeout(limit, read).await.map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    limit.as_millis()
                ),
            )
        })?,
        None => read.await,
    };
    bytes.map_err(body_error)
}

fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "body_too_large",
            "the request body is over the server's size limit (--max-body-bytes)",
        )
    } else {
        ApiError::new(status, "bad_body", rejection.body_text())
    }
}

pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "the request body is empty; a JSON object is expected",
        )
        .with_field("body"));
    }
    let malformed = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
        .with_field("body")
    };
    // The fast path parses without tracking where it is; only a failed parse is repeated
    // with serde_path_to_error, to name the field at fault.
    let error = match serde_json::from_slice(bytes) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    if !error.is_data() {
        return Err(malformed(error));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let traced: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let Err(e) = traced else {
        return Err(invalid_body(&error));
    };
    let path = e.path().to_string();
    let inner = e.into_inner();
    Err(match (inner.is_data(), path.as_str()) {
        (false, _) => malformed(inner),
        (true, ".") => invalid_body(&inner),
        (true, _) => ApiError::field(path, inner.to_string()),
    })
}

/// JSON of the wrong shape at its top level: the field is the one missing, where serde says
/// which, else the body as a whole.
fn invalid_body(e: &serde_json::Error) -> ApiError {
    let message = e.to_string();
    let field = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map_or("body".to_string(), |(name, _)| name.to_string());
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message).with_field(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        shape: Vec<u32>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inputs: Vec<Inner>,
    }

    #[test]
    fn a_wrong_type_names_the_field_path() {
        let e =
            parse_json::<Outer>(br#"{"inputs": [{"shape": [1]}, {"shape": "x"}]}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.body.field.as_deref(), Some("inputs[1].shape"));
    }

    #[test]
    fn not_json_is_a_400_and_empty_is_named() {
        let e = parse_json::<Outer>(b"{\"inputs\": [").unwrap_err();
        assert_eq!(
            (e.status, e.body.code),
            (StatusCode::BAD_REQUEST, "malformed_json")
        );
        let e = parse_json::<Outer>(b"{\"inputs\": []} trailing").unwrap_err();
        assert_eq!(e.body.code, "malformed_json");
        assert_eq!(e.body.field.as_deref(), Some("body"));
        let e = parse_json::<Outer>(b"  ").unwrap_err();
        assert_eq!(
            (e.body.code, e.body.field.as_deref()),
            ("empty_body", Some("body"))
        );
        let e = parse_json::<Outer>(b"{}").unwrap_err();
        assert_eq!(
            (e.body.code, e.body.field.as_deref()),
            ("invalid_body", Some("inputs"))
        );
        let e = parse_json::<Outer>(b"\"x\"").unwrap_err();
        assert_eq!(
            (e.body.code, e.body.field.as_deref()),
            ("invalid_body", Some("body"))
        );
        let e = parse_json::<Outer>(b"  ").unwrap_err();
        assert_eq!(e.body.code, "empty_body");
    }
}
