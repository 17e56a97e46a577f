//! What the OAuth endpoints share on the HTTP side: the request headers the core reads, and
//! the core's [`Rejection`]s rendered as OAuth errors. The parameter rules themselves are in
//! [`crate::oauth::params`].

use actix_web::{HttpRequest, HttpResponse, http::header};

use crate::{
    error::OAuthError,
    oauth::{
        error::{Rejection, RetryAfter},
        params,
    },
};

/// The value of header `name` as text, if present and visible ASCII.
pub(crate) fn header_text(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Requires a form body.
pub(crate) fn require_form_content_type(req: &HttpRequest) -> Result<(), OAuthError> {
    Ok(params::require_form(header_text(
        req,
        header::CONTENT_TYPE,
    ))?)
}

impl From<Rejection> for OAuthError {
    fn from(rejection: Rejection) -> Self {
        let description = rejection.description;
        match rejection.retry_after {
            Some(RetryAfter {
                secs,
                throttled: true,
            }) => Self::too_many_requests(description, secs),
            Some(RetryAfter {
                secs,
                throttled: false,
            }) => Self::unavailable_for(description, secs),
            None if rejection.basic_challenge => Self::invalid_basic_client(description),
            None => Self::new(rejection.code, description),
        }
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
    use actix_web::{ResponseError, http::StatusCode};

    use super::*;
    use crate::{error::OAuthErrorCode, oauth::error::ErrorCode};

    #[test]
    fn rejections_keep_their_code_description_and_answer() {
        let plain: OAuthError = Rejection::invalid_grant("code already used").into();
        assert_eq!(plain.code(), OAuthErrorCode::InvalidGrant);
        assert_eq!(plain.description(), "code already used");
        assert_eq!(plain.status_code(), StatusCode::BAD_REQUEST);
        let basic: OAuthError = crate::oauth::client_auth::invalid_client(true).into();
        assert_eq!(
            basic,
            OAuthError::invalid_basic_client("client authentication failed")
        );
        let throttled: OAuthError = Rejection::throttled("slow", 3).into();
        assert_eq!(throttled, OAuthError::too_many_requests("slow", 3));
        assert_eq!(throttled.status_code(), StatusCode::TOO_MANY_REQUESTS);
        let busy: OAuthError = Rejection::unavailable_for("busy", 9).into();
        assert_eq!(busy, OAuthError::unavailable_for("busy", 9));
    }

    #[test]
    fn every_code_maps_to_the_same_wire_value() {
        use ErrorCode::*;
        let wire = [
            (InvalidRequest, "invalid_request"),
            (InvalidClient, "invalid_client"),
            (InvalidGrant, "invalid_grant"),
            (UnauthorizedClient, "unauthorized_client"),
            (UnsupportedGrantType, "unsupported_grant_type"),
            (UnsupportedResponseType, "unsupported_response_type"),
            (InvalidScope, "invalid_scope"),
            (InvalidTarget, "invalid_target"),
            (AccessDenied, "access_denied"),
            (InvalidRedirectUri, "invalid_redirect_uri"),
            (InvalidClientMetadata, "invalid_client_metadata"),
            (ServerError, "server_error"),
            (TemporarilyUnavailable, "temporarily_unavailable"),
        ];
        for (code, value) in wire {
            assert_eq!(code.as_str(), value);
        }
    }
}
