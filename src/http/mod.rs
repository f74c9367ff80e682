//! HTTP pieces shared below both the auth and the proxy sides of the request path: the
//! normalized path, safe-to-print text, the JSON error shape, request errors, the response
//! body type and the per-exchange notes the access log reads.

pub(crate) mod body;
pub(crate) mod exchange;
pub mod path;
pub(crate) mod request_body;
pub(crate) mod request_error;
pub(crate) mod response;
pub(crate) mod text;

pub use self::request_body::RequestBody;
