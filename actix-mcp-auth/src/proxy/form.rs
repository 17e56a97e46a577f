//! Parameters of OAuth requests (`application/x-www-form-urlencoded` bodies and query strings).
//!
//! OAuth 2.1 §3.1/§3.2: a parameter sent twice makes the request invalid (it is how parameter
//! pollution attacks start); a parameter sent without a value counts as absent. A NUL character
//! (`%00`) anywhere makes the request invalid: no parameter needs one, and PostgreSQL refuses it
//! in text, which would turn a client's mistake into a server error.

use std::collections::HashMap;

use actix_web::{HttpResponse, http::header};

use crate::error::{OAuthError, OAuthErrorCode};

/// Request parameters, each present at most once.
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    /// Parses `input` (a query string or form body).
    pub fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(input) {
            if name.contains('\0') || value.contains('\0') {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    format!("parameter `{}` contains a NUL character", printable(&name)),
                ));
            }
            if value.is_empty() {
                continue;
            }
            if map
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    format!("parameter `{}` is repeated", printable(&name)),
                ));
            }
        }
        Ok(Self(map))
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of `name`, or `invalid_request`.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| {
            OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                format!("missing parameter `{name}`"),
            )
        })
    }
}

/// A parameter name as it may appear in an error description (bounded, printable).
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}

/// Requires a form body.
pub(crate) fn require_form_content_type(req: &actix_web::HttpRequest) -> Result<(), OAuthError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if is_form {
        Ok(())
    } else {
        Err(OAuthError::new(
            OAuthErrorCode::InvalidRequest,
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

/// Lets browser-based clients read a response (token, registration, revocation endpoints;
/// never the authorization endpoint).
pub(crate) fn with_cors(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    response
}

/// An OAuth JSON error answer, readable cross-origin.
pub(crate) fn json_error(error: &OAuthError) -> HttpResponse {
    with_cors(actix_web::ResponseError::error_response(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        let err = Params::parse(b"scope=a&scope=b").unwrap_err();
        assert_eq!(err.code(), OAuthErrorCode::InvalidRequest);
    }

    #[test]
    fn nul_characters_are_refused() {
        for input in [
            &b"state=a%00b"[..],
            b"client_id=%00",
            b"x%00=1",
            b"state=a\0b",
        ] {
            let err = Params::parse(input).unwrap_err();
            assert_eq!(err.code(), OAuthErrorCode::InvalidRequest, "{input:?}");
        }
    }

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::parse(b"state=&code=x").unwrap();
        assert_eq!(p.get("state"), None);
        assert_eq!(p.require("code").unwrap(), "x");
        assert!(p.require("state").is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parsing_never_panics_and_keeps_one_value_per_name(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let has_nul = url::form_urlencoded::parse(&body)
                .any(|(name, value)| name.contains('\0') || value.contains('\0'));
            prop_assert!(!(has_nul && Params::parse(&body).is_ok()));
            if let Ok(params) = Params::parse(&body) {
                for (name, value) in url::form_urlencoded::parse(&body) {
                    if !value.is_empty() {
                        prop_assert_eq!(params.get(&name), Some(value.as_ref()));
                    }
                }
            }
        }
    }
}
