//! Reading client metadata JSON (RFC 7591 registrations and client ID metadata documents):
//! the field shapes both accept, with errors as plain descriptions that each caller wraps in
//! its own error type.

use serde_json::{Map, Value};

/// The array-of-strings field `name`, if present (`null` counts as absent).
pub fn string_list(doc: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, String> {
    let shape = || format!("`{name}` must be an array of strings");
    match doc.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(shape))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(shape()),
    }
}

/// Whether a media type (a `Content-Type` value) is `application/json`, any parameters and
/// any case allowed.
pub fn is_json_media_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn string_lists_and_their_errors() {
        let doc = json!({"a": ["x", "y"], "b": null, "c": [1], "d": "x"});
        let doc = doc.as_object().unwrap();
        assert_eq!(
            string_list(doc, "a").unwrap(),
            Some(vec!["x".into(), "y".into()])
        );
        assert_eq!(string_list(doc, "b").unwrap(), None);
        assert_eq!(string_list(doc, "missing").unwrap(), None);
        for bad in ["c", "d"] {
            assert_eq!(
                string_list(doc, bad).unwrap_err(),
                format!("`{bad}` must be an array of strings")
            );
        }
    }

    #[test]
    fn json_media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(!is_json_media_type("text/html"));
        assert!(!is_json_media_type("application/jsonp"));
    }
}
