//! The one shape of every error the gateway answers itself: a status and a JSON document
//! `{"error": ..., "error_description": ...}`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

/// A JSON error response with any body type that can hold bytes.
pub fn json_error<B: From<Bytes>>(
    status: StatusCode,
    error: &str,
    description: &str,
) -> Response<B> {
    let document = json!({ "error": error, "error_description": description });
    // A `Value` always serializes; the fallback only keeps this function total.
    let bytes = serde_json::to_vec(&document).unwrap_or_default();
    let mut response = Response::new(B::from(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn error_document_has_both_members() {
        let response: Response<Full<Bytes>> = json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a \"quoted\" word",
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"], "invalid_request");
        assert_eq!(value["error_description"], "a \"quoted\" word");
    }
}
