//! The revocation endpoint's decisions (RFC 7009).
//!
//! The answer is 200 whether or not the token was known (§2.2), once the client is
//! authenticated: a client can only revoke its own tokens, and learns nothing about others'.
//! Revoking a refresh token ends its whole grant, access tokens included (§2.1 SHOULD);
//! revoking an access token ends that token only. Any `token_type_hint` is ignored: the token
//! is looked up whatever its kind (§2.1 allows it).

use super::{
    error::Rejection,
    params::Params,
    tokens::{ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX, has_shape},
};

/// The kinds of token we issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An access token.
    Access,
    /// A refresh token.
    Refresh,
}

/// A token found in the store: its kind and the client it was issued to.
#[derive(Debug, Clone, Copy)]
pub struct FoundToken<'a> {
    /// Its kind.
    pub kind: TokenKind,
    /// The client it was issued to.
    pub client_id: &'a str,
}

/// What a revocation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Nothing to revoke (another client's token); still a success.
    Nothing,
    /// Revoke this access token.
    AccessToken,
    /// End the grant behind this refresh token.
    Grant,
}

/// The token to look up, or `None` when it cannot be one of ours (no lookup is worth doing,
/// and the answer is a success all the same).
pub fn token_to_revoke(params: &Params) -> Result<Option<&str>, Rejection> {
    let token = params.require("token")?;
    let ours = has_shape(token, ACCESS_TOKEN_PREFIX) || has_shape(token, REFRESH_TOKEN_PREFIX);
    Ok(ours.then_some(token))
}

/// What revoking `found` does for the authenticated `client_id` (a token the store does not
/// know needs no decision: nothing happens).
pub fn decide(found: FoundToken<'_>, client_id: &str) -> Revocation {
    if found.client_id != client_id {
        return Revocation::Nothing;
    }
    match found.kind {
        TokenKind::Access => Revocation::AccessToken,
        TokenKind::Refresh => Revocation::Grant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::{ErrorCode, testing::assert_rejected};

    const ACCESS: &str = "mcp_at_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const REFRESH: &str = "mcp_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn the_only_refusal_is_a_missing_token() {
        assert_rejected(
            token_to_revoke(&Params::default()),
            ErrorCode::InvalidRequest,
            "missing parameter `token`",
        );
    }

    #[test]
    fn only_our_token_shapes_are_looked_up() {
        for token in [ACCESS, REFRESH] {
            let params = Params::from_pairs(&[("token", token)]);
            assert_eq!(token_to_revoke(&params).unwrap(), Some(token));
        }
        for token in [
            "mcp_ac_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "eyJhbGciOi",
            "mcp_at_x",
        ] {
            let params = Params::from_pairs(&[("token", token)]);
            assert_eq!(token_to_revoke(&params).unwrap(), None, "{token}");
        }
    }

    #[test]
    fn a_client_revokes_only_its_own_tokens() {
        let token = |kind, client_id| FoundToken { kind, client_id };
        assert_eq!(
            decide(token(TokenKind::Access, "other"), "c"),
            Revocation::Nothing
        );
        assert_eq!(
            decide(token(TokenKind::Refresh, "other"), "c"),
            Revocation::Nothing
        );
        assert_eq!(
            decide(token(TokenKind::Access, "c"), "c"),
            Revocation::AccessToken
        );
        assert_eq!(
            decide(token(TokenKind::Refresh, "c"), "c"),
            Revocation::Grant
        );
    }
}
