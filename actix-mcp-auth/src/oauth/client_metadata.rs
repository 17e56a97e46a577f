//! Reading client metadata JSON (RFC 7591 registrations and client ID metadata documents):
//! the field shapes both accept, with errors as plain descriptions that each caller wraps in
//! its own error type.

use serde_json::{Map, Value};

/// Most redirect URIs one client may register (or list in its metadata document).
pub const MAX_REDIRECT_URIS: usize = 10;

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

/// `grant_types` (default `["authorization_code"]`): it must include `authorization_code` and
/// may add `refresh_token` only (the only grants we serve).
pub fn grant_types(doc: &Map<String, Value>) -> Result<Vec<String>, String> {
    let grant_types =
        string_list(doc, "grant_types")?.unwrap_or_else(|| vec!["authorization_code".into()]);
    let supported = grant_types.iter().any(|g| g == "authorization_code")
        && grant_types
            .iter()
            .all(|g| g == "authorization_code" || g == "refresh_token");
    if supported {
        Ok(grant_types)
    } else {
        Err(
            "`grant_types` must include authorization_code and may add refresh_token only"
                .to_owned(),
        )
    }
}

/// `response_types`, when present, must be `["code"]` (the only flow we serve).
pub fn check_response_types(doc: &Map<String, Value>) -> Result<(), String> {
    match string_list(doc, "response_types")? {
        Some(types) if types != ["code"] => Err("`response_types` must be [\"code\"]".to_owned()),
        _ => Ok(()),
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
    fn grant_and_response_types() {
        let doc = |value: serde_json::Value| value.as_object().unwrap().clone();
        assert_eq!(
            grant_types(&doc(json!({}))).unwrap(),
            vec!["authorization_code".to_owned()]
        );
        let both = json!({"grant_types": ["authorization_code", "refresh_token"]});
        assert_eq!(grant_types(&doc(both)).unwrap().len(), 2);
        for bad in [
            json!({"grant_types": []}),
            json!({"grant_types": ["refresh_token"]}),
            json!({"grant_types": ["authorization_code", "implicit"]}),
        ] {
            assert!(grant_types(&doc(bad)).unwrap_err().contains("must include"));
        }
        assert!(check_response_types(&doc(json!({}))).is_ok());
        assert!(check_response_types(&doc(json!({"response_types": ["code"]}))).is_ok());
        for bad in [
            json!({"response_types": ["token"]}),
            json!({"response_types": []}),
        ] {
            assert!(
                check_response_types(&doc(bad))
                    .unwrap_err()
                    .contains("must be")
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
