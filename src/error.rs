//! Formatting errors for logs and operator messages.

/// An error and its `source()` chain on one line (`a: b: c`), skipping a source whose text the
/// line already contains (reqwest and hyper often repeat their cause in their own message).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
