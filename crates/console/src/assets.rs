//! The page's files, embedded in the binary: no CDN, no Node.js, no build step.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every file the page loads: name, content type, content.
const FILES: [(&str, &str, &str); 4] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../assets/index.html"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../assets/console.css"),
    ),
    (
        "examples.json",
        "application/json",
        include_str!("../assets/examples.json"),
    ),
];

/// The file `name`, or a 404.
pub fn serve(name: &str) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => {
            let mut res = (*body).into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            res
        }
        None => (StatusCode::NOT_FOUND, "no such console file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_examples_are_json_events() {
        let examples: serde_json::Value =
            serde_json::from_str(FILES[3].2).expect("examples.json is JSON");
        let list = examples.as_array().expect("a list");
        assert!(list.len() >= 3);
        for example in list {
            assert!(example["label"].is_string(), "{example}");
            assert!(example["event"]["type"].is_string(), "{example}");
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_no_inline_script() {
        let html = FILES[0].2;
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(!html.contains("<script>"), "inline scripts break the CSP");
        assert!(!html.contains("style=\""), "inline styles break the CSP");
    }
}
