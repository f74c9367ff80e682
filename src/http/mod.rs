//! HTTP pieces shared below both the auth and the proxy sides of the request path: the
//! normalized path, safe-to-print text, the JSON error shape, request errors, the response
//! body type and the per-exchange notes the access log reads.

pub mod body;
pub mod exchange;
pub mod path;
pub mod request_body;
pub mod request_error;
pub mod response;
pub mod text;
