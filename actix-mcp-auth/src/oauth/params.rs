//! Parameters of OAuth requests (`application/x-www-form-urlencoded` bodies and query strings).
//!
//! OAuth 2.1 §3.1/§3.2: a parameter sent twice makes the request invalid (it is how parameter
//! pollution attacks start); a parameter sent without a value counts as absent. A NUL character
//! (`%00`) anywhere makes the request invalid: no parameter needs one, and PostgreSQL refuses it
//! in text, which would turn a client's mistake into a server error.

use std::collections::HashMap;

use super::error::Rejection;

/// Request parameters, each present at most once.
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `input` (a query string or form body).
    pub fn parse(input: &[u8]) -> Result<Self, Rejection> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(input) {
            if name.contains('\0') || value.contains('\0') {
                return Err(Rejection::invalid_request(format!(
                    "parameter `{}` contains a NUL character",
                    printable(&name)
                )));
            }
            if value.is_empty() {
                continue;
            }
            if map
                .insert(name.clone().into_owned(), value.into_owned())
                .is_some()
            {
                return Err(Rejection::invalid_request(format!(
                    "parameter `{}` is repeated",
                    printable(&name)
                )));
            }
        }
        Ok(Self(map))
    }

    /// Parameters from `(name, value)` pairs, for crafted requests in tests.
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Self::parse(encoded.as_bytes()).expect("valid test parameters")
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of `name`, or `invalid_request`.
    pub fn require(&self, name: &str) -> Result<&str, Rejection> {
        self.get(name)
            .ok_or_else(|| Rejection::invalid_request(format!("missing parameter `{name}`")))
    }
}

/// A parameter name as it may appear in an error description (bounded, printable).
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}

/// Requires a form body (`Content-Type: application/x-www-form-urlencoded`, any parameters):
/// the token and revocation endpoints accept nothing else (OAuth 2.1 §3.2.2, RFC 7009 §2.1).
pub fn require_form(content_type: Option<&str>) -> Result<(), Rejection> {
    let is_form = content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if is_form {
        Ok(())
    } else {
        Err(Rejection::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::{ErrorCode, testing::assert_rejected};

    #[test]
    fn repeated_parameters_are_refused() {
        assert_rejected(
            Params::parse(b"scope=a&scope=b"),
            ErrorCode::InvalidRequest,
            "parameter `scope` is repeated",
        );
    }

    #[test]
    fn nul_characters_are_refused() {
        for input in [
            &b"state=a%00b"[..],
            b"client_id=%00",
            b"x%00=1",
            b"state=a\0b",
        ] {
            assert_rejected(
                Params::parse(input),
                ErrorCode::InvalidRequest,
                "contains a NUL character",
            );
        }
    }

    #[test]
    fn empty_values_count_as_absent() {
        let p = Params::parse(b"state=&code=x").unwrap();
        assert_eq!(p.get("state"), None);
        assert_eq!(p.require("code").unwrap(), "x");
        assert_rejected(
            p.require("state"),
            ErrorCode::InvalidRequest,
            "missing parameter `state`",
        );
    }

    #[test]
    fn names_in_descriptions_are_bounded_and_printable() {
        let body = format!("{}%22%0A=1&{0}%22%0A=2", "n".repeat(60));
        let rejection = Params::parse(body.as_bytes()).unwrap_err();
        assert_eq!(
            rejection.description,
            format!("parameter `{}` is repeated", "n".repeat(40))
        );
    }

    #[test]
    fn only_form_bodies_are_accepted() {
        for ok in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8",
            " application/x-www-form-urlencoded ;x=y",
        ] {
            assert!(require_form(Some(ok)).is_ok(), "{ok}");
        }
        for bad in [None, Some(""), Some("application/json"), Some("text/plain")] {
            assert_rejected(
                require_form(bad),
                ErrorCode::InvalidRequest,
                "must be application/x-www-form-urlencoded",
            );
        }
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
