//! Dynamic client registration (RFC 7591): `POST /oauth2/register`, as AuthKit serves it once
//! "Dynamic Client Registration" is switched on for MCP.
//!
//! A registered client becomes a client record of the OAuth endpoints (the `connect` module),
//! like a Connect application: the same authorization and token code paths serve both. A public
//! client (`token_endpoint_auth_method` `none`) has no secret and must use PKCE S256; a
//! confidential one (AuthKit's default, `client_secret_basic`) receives a secret. The rules
//! that set registered clients apart (optional `scope` and `nonce`, the `resource` honoured as
//! the access token's audience) live with those endpoints.
//!
//! Every refusal is an RFC 7591 §3.2.2 error (`invalid_redirect_uri`,
//! `invalid_client_metadata`); nothing here panics on request input.

use actix_web::http::{Method, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};
use url::{Host, Url};

use super::connect::{
    ClientRecord, Registration, SUPPORTED_SCOPES, error_body, parse_scope, random_token,
};
use super::{Endpoint, FakeAuthKit, ServerCtx, lock, ulid_like, unix_now};

const REGISTER_METHODS: &[Method] = &[Method::POST];
/// The client authentication methods a client may register; the first is the default.
const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];
/// The grant types a client may register.
const GRANT_TYPES: [&str; 2] = ["authorization_code", "refresh_token"];
/// Redirect URI schemes refused outright: they would run or read something in the browser.
const FORBIDDEN_SCHEMES: [&str; 4] = ["javascript", "data", "file", "vbscript"];

impl FakeAuthKit {
    /// The ids of the clients registered at `/oauth2/register` so far, oldest first (Connect
    /// applications of [`register_connect_app`](Self::register_connect_app) are not listed).
    ///
    /// Ids look like AuthKit's: `client_01` followed by 24 Crockford base32 characters.
    pub fn registered_clients(&self) -> Vec<String> {
        lock(&self.inner.shared.connect).registered_client_ids()
    }
}

/// `POST /oauth2/register`.
pub(super) async fn register(
    req: HttpRequest,
    body: web::Bytes,
    ctx: web::Data<ServerCtx>,
) -> HttpResponse {
    if let Err(response) = ctx.admit(&req, Endpoint::Register, REGISTER_METHODS).await {
        return response;
    }
    let mut response = match ClientMetadata::from_request(&req, &body) {
        Ok(metadata) => {
            let (client_id, client) = metadata.to_client();
            let document = metadata_document(&client_id, &metadata, &client);
            lock(&ctx.shared.connect).add_registered_client(client_id, client);
            HttpResponse::Created().json(document)
        }
        Err(refusal) => {
            HttpResponse::BadRequest().json(error_body(refusal.error, &refusal.description))
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    headers.insert(header::PRAGMA, header::HeaderValue::from_static("no-cache"));
    response
}

/// Why a registration is refused (RFC 7591 §3.2.2).
struct Refusal {
    error: &'static str,
    description: String,
}

impl Refusal {
    fn metadata(description: impl Into<String>) -> Refusal {
        Refusal {
            error: "invalid_client_metadata",
            description: description.into(),
        }
    }

    fn redirect_uri(description: impl Into<String>) -> Refusal {
        Refusal {
            error: "invalid_redirect_uri",
            description: description.into(),
        }
    }
}

/// The registration request, checked: the metadata the emulator understands, with RFC 7591
/// defaults filled in. Other members are ignored (and not echoed back).
struct ClientMetadata {
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: &'static str,
    grant_types: Vec<&'static str>,
    client_name: Option<String>,
    scope: Option<Vec<String>>,
}

impl ClientMetadata {
    fn from_request(req: &HttpRequest, body: &[u8]) -> Result<ClientMetadata, Refusal> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(Refusal::metadata("the body must be application/json"));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(members)) => ClientMetadata::from_members(&members),
            _ => Err(Refusal::metadata("the body must be a JSON object")),
        }
    }

    fn from_members(members: &Map<String, Value>) -> Result<ClientMetadata, Refusal> {
        // A member set to `null` counts as absent.
        let member = |name: &str| members.get(name).filter(|value| !value.is_null());

        let redirect_uris = match member("redirect_uris") {
            None => return Err(Refusal::redirect_uri("redirect_uris is required")),
            Some(value) => string_list(value)
                .filter(|uris| !uris.is_empty())
                .ok_or_else(|| {
                    Refusal::redirect_uri("redirect_uris must be a non-empty array of strings")
                })?,
        };
        for uri in &redirect_uris {
            check_redirect_uri(uri)?;
        }

        let token_endpoint_auth_method = match member("token_endpoint_auth_method") {
            None => AUTH_METHODS[0],
            Some(value) => value
                .as_str()
                .and_then(|method| AUTH_METHODS.into_iter().find(|known| *known == method))
                .ok_or_else(|| {
                    Refusal::metadata(
                        "token_endpoint_auth_method must be none, client_secret_basic or \
                         client_secret_post",
                    )
                })?,
        };

        let grant_types = match member("grant_types") {
            None => vec![GRANT_TYPES[0]],
            Some(value) => {
                let listed = string_list(value)
                    .ok_or_else(|| Refusal::metadata("grant_types must be an array of strings"))?;
                let mut grant_types = Vec::new();
                for grant_type in &listed {
                    let known = GRANT_TYPES
                        .into_iter()
                        .find(|known| known == grant_type)
                        .ok_or_else(|| {
                            Refusal::metadata(format!(
                                "grant type {grant_type:?} is not supported \
                                 (authorization_code, refresh_token)"
                            ))
                        })?;
                    if !grant_types.contains(&known) {
                        grant_types.push(known);
                    }
                }
                grant_types
            }
        };
        if !grant_types.contains(&"authorization_code") {
            return Err(Refusal::metadata(
                "grant_types must include authorization_code",
            ));
        }

        if let Some(value) = member("response_types") {
            let valid = string_list(value)
                .is_some_and(|types| !types.is_empty() && types.iter().all(|t| t == "code"));
            if !valid {
                return Err(Refusal::metadata("response_types must be [\"code\"]"));
            }
        }

        let client_name = match member("client_name") {
            None => None,
            Some(Value::String(name)) => Some(name.clone()),
            Some(_) => return Err(Refusal::metadata("client_name must be a string")),
        };

        let scope = match member("scope") {
            None => None,
            Some(value) => {
                let scopes = value
                    .as_str()
                    .and_then(parse_scope)
                    .filter(|scopes| !scopes.is_empty())
                    .ok_or_else(|| {
                        Refusal::metadata(format!(
                            "scope must be a space-separated list of {}",
                            SUPPORTED_SCOPES.join(", ")
                        ))
                    })?;
                Some(scopes)
            }
        };

        Ok(ClientMetadata {
            redirect_uris,
            token_endpoint_auth_method,
            grant_types,
            client_name,
            scope,
        })
    }

    /// A fresh client id and the client record: public for `none`, else with a new secret.
    fn to_client(&self) -> (String, ClientRecord) {
        let public = self.token_endpoint_auth_method == "none";
        let client = ClientRecord {
            secret: (!public).then(random_token),
            redirect_uris: self.redirect_uris.clone(),
            registration: Some(Registration {
                scope: self.scope.clone(),
                refresh: self.grant_types.contains(&"refresh_token"),
            }),
        };
        (format!("client_{}", ulid_like()), client)
    }
}

/// The registration answer (RFC 7591 §3.2.1): the client id, the secret of a confidential
/// client, and the registered metadata.
fn metadata_document(client_id: &str, metadata: &ClientMetadata, client: &ClientRecord) -> Value {
    let mut document = Map::new();
    document.insert("client_id".into(), json!(client_id));
    document.insert("client_id_issued_at".into(), json!(unix_now()));
    if let Some(secret) = &client.secret {
        document.insert("client_secret".into(), json!(secret));
        // 0: the secret does not expire.
        document.insert("client_secret_expires_at".into(), json!(0));
    }
    if let Some(name) = &metadata.client_name {
        document.insert("client_name".into(), json!(name));
    }
    document.insert("redirect_uris".into(), json!(metadata.redirect_uris));
    document.insert("grant_types".into(), json!(metadata.grant_types));
    document.insert("response_types".into(), json!(["code"]));
    document.insert(
        "token_endpoint_auth_method".into(),
        json!(metadata.token_endpoint_auth_method),
    );
    if let Some(scope) = &metadata.scope {
        document.insert("scope".into(), json!(scope.join(" ")));
    }
    Value::Object(document)
}

/// The strings of a JSON array of strings.
fn string_list(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// An absolute URI without a fragment (RFC 6749 §3.1.2); `https`, `http` on a loopback host
/// only (OAuth 2.1), or a private-use scheme of a native app (RFC 8252 §7.1).
fn check_redirect_uri(uri: &str) -> Result<(), Refusal> {
    let url = Url::parse(uri)
        .map_err(|_| Refusal::redirect_uri(format!("{uri:?} is not an absolute URI")))?;
    if url.fragment().is_some() {
        return Err(Refusal::redirect_uri(format!("{uri:?} has a fragment")));
    }
    let loopback = match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(address)) => address.is_loopback(),
        Some(Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(Refusal::redirect_uri(format!(
            "{uri:?}: http is allowed on loopback hosts only"
        ))),
        scheme if FORBIDDEN_SCHEMES.contains(&scheme) => Err(Refusal::redirect_uri(format!(
            "{uri:?}: the {scheme} scheme is not allowed"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::{Map, Value, json};
    use sha2::{Digest, Sha256};
    use url::Url;

    use super::super::{Endpoint, FakeAuthKit};

    const CALLBACK: &str = "http://127.0.0.1:33418/callback";
    const RESOURCE: &str = "http://127.0.0.1:8000/mcp";

    fn client() -> awc::Client {
        awc::Client::builder().disable_redirects().finish()
    }

    /// The registration metadata of a typical MCP client (public, both grant types).
    fn mcp_client_metadata() -> Value {
        json!({
            "client_name": "Test MCP client",
            "redirect_uris": [CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        })
    }

    async fn register(
        fake: &FakeAuthKit,
        metadata: &Value,
    ) -> (u16, awc::http::header::HeaderMap, Value) {
        let mut response = client()
            .post(format!("{}/oauth2/register", fake.issuer()))
            .send_json(metadata)
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json::<Value>().await.unwrap())
    }

    /// Registers `metadata` and returns the client id.
    async fn client_id(fake: &FakeAuthKit, metadata: &Value) -> String {
        let (status, _, body) = register(fake, metadata).await;
        assert_eq!(status, 201, "{body}");
        body["client_id"].as_str().unwrap().to_owned()
    }

    /// A PKCE verifier and its S256 challenge.
    fn pkce() -> (String, String) {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        (verifier, challenge)
    }

    /// `GET /oauth2/authorize`; expects a redirect to [`CALLBACK`] and returns its query.
    async fn authorize(fake: &FakeAuthKit, params: &[(&str, &str)]) -> BTreeMap<String, String> {
        let url =
            Url::parse_with_params(&format!("{}/oauth2/authorize", fake.issuer()), params).unwrap();
        let response = client().get(url.as_str()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 302, "{params:?}");
        let location = Url::parse(
            response
                .headers()
                .get("location")
                .unwrap()
                .to_str()
                .unwrap(),
        )
        .unwrap();
        assert!(location.as_str().starts_with(CALLBACK), "{location}");
        location.query_pairs().into_owned().collect()
    }

    /// What an MCP client sends: PKCE, state, optionally a resource; no scope, no nonce.
    fn mcp_authorize_params<'a>(
        client_id: &'a str,
        challenge: &'a str,
        resource: Option<&'a str>,
    ) -> Vec<(&'a str, &'a str)> {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", CALLBACK),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("state", "st-1"),
        ];
        params.extend(resource.map(|resource| ("resource", resource)));
        params
    }

    async fn code_for(fake: &FakeAuthKit, params: &[(&str, &str)]) -> String {
        let query = authorize(fake, params).await;
        assert_eq!(query.get("state").map(String::as_str), Some("st-1"));
        query
            .get("code")
            .cloned()
            .unwrap_or_else(|| panic!("no code: {query:?}"))
    }

    async fn token(
        fake: &FakeAuthKit,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = client().post(format!("{}/oauth2/token", fake.issuer()));
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, secret);
        }
        let mut response = request.send_form(&form).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    }

    /// Redeems `code` as a public client (`client_id` alone), with an optional verifier and
    /// `resource`.
    async fn redeem(
        fake: &FakeAuthKit,
        client_id: &str,
        code: &str,
        verifier: Option<&str>,
        resource: Option<&str>,
    ) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", CALLBACK),
        ];
        form.extend(verifier.map(|verifier| ("code_verifier", verifier)));
        form.extend(resource.map(|resource| ("resource", resource)));
        token(fake, None, &form).await
    }

    /// Uses `refresh_token` as a public client, with an optional `resource`.
    async fn refresh(
        fake: &FakeAuthKit,
        client_id: &str,
        refresh_token: &str,
        resource: Option<&str>,
    ) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token),
        ];
        form.extend(resource.map(|resource| ("resource", resource)));
        token(fake, None, &form).await
    }

    /// Verifies an RS256 token of the emulator and returns its claims (any audience).
    fn claims(fake: &FakeAuthKit, token: &str) -> Map<String, Value> {
        crate::install_jwt_provider();
        let key = DecodingKey::from_rsa_pem(fake.public_key_pem().as_bytes()).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[fake.issuer()]);
        validation.validate_aud = false;
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .unwrap()
            .claims
    }

    fn error_of(body: &Value) -> &str {
        body["error"].as_str().unwrap_or_default()
    }

    #[actix_web::test]
    async fn registers_public_and_confidential_clients() {
        let fake = FakeAuthKit::start();
        let (status, headers, body) = register(&fake, &mcp_client_metadata()).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(headers.get("cache-control").unwrap(), "no-store");
        let client_id = body["client_id"].as_str().unwrap().to_owned();
        assert!(client_id.starts_with("client_01"), "{client_id}");
        assert_eq!(client_id.len(), "client_".len() + 26);
        assert!(body["client_id_issued_at"].as_u64().unwrap() > 0);
        assert_eq!(body["client_name"], "Test MCP client");
        assert_eq!(body["redirect_uris"], json!([CALLBACK]));
        assert_eq!(
            body["grant_types"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(body["response_types"], json!(["code"]));
        assert_eq!(body["token_endpoint_auth_method"], "none");
        assert!(body.get("client_secret").is_none());
        assert!(body.get("scope").is_none());

        // AuthKit's default method is client_secret_basic, which issues a secret.
        let (status, _, confidential) = register(
            &fake,
            &json!({ "redirect_uris": ["https://app.example/cb", "cursor://callback"], "scope": "openid openid email" }),
        )
        .await;
        assert_eq!(status, 201, "{confidential}");
        assert_eq!(
            confidential["token_endpoint_auth_method"],
            "client_secret_basic"
        );
        assert!(
            confidential["client_secret"]
                .as_str()
                .is_some_and(|s| s.len() >= 32)
        );
        assert_eq!(confidential["client_secret_expires_at"], 0);
        assert_eq!(confidential["grant_types"], json!(["authorization_code"]));
        assert_eq!(confidential["scope"], "openid email");
        assert!(confidential.get("client_name").is_none());
        assert_ne!(confidential["client_id"], body["client_id"]);

        let post = json!({ "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "client_secret_post", "client_name": null });
        let (status, _, third) = register(&fake, &post).await;
        assert_eq!(status, 201, "{third}");
        assert!(third["client_secret"].is_string());

        assert_eq!(fake.calls(Endpoint::Register), 3);
        assert_eq!(
            fake.registered_clients(),
            [
                &body["client_id"],
                &confidential["client_id"],
                &third["client_id"]
            ]
            .map(|id| id.as_str().unwrap().to_owned())
        );
    }

    #[actix_web::test]
    async fn registration_errors() {
        let fake = FakeAuthKit::start();
        let with = |name: &str, value: Value| {
            let mut metadata = mcp_client_metadata();
            metadata[name] = value;
            metadata
        };
        let mut without_uris = mcp_client_metadata();
        without_uris
            .as_object_mut()
            .unwrap()
            .remove("redirect_uris");
        let cases = [
            (without_uris, "invalid_redirect_uri"),
            (with("redirect_uris", json!(null)), "invalid_redirect_uri"),
            (with("redirect_uris", json!([])), "invalid_redirect_uri"),
            (
                with("redirect_uris", json!(CALLBACK)),
                "invalid_redirect_uri",
            ),
            (
                with("redirect_uris", json!([CALLBACK, 7])),
                "invalid_redirect_uri",
            ),
            (
                with("redirect_uris", json!(["/callback"])),
                "invalid_redirect_uri",
            ),
            (
                with("redirect_uris", json!(["http://127.0.0.1:9/cb#frag"])),
                "invalid_redirect_uri",
            ),
            (
                with("redirect_uris", json!(["http://app.example/cb"])),
                "invalid_redirect_uri",
            ),
            (
                with("redirect_uris", json!(["javascript:alert(1)"])),
                "invalid_redirect_uri",
            ),
            (
                with("token_endpoint_auth_method", json!("private_key_jwt")),
                "invalid_client_metadata",
            ),
            (
                with("token_endpoint_auth_method", json!(1)),
                "invalid_client_metadata",
            ),
            (
                with("grant_types", json!(["client_credentials"])),
                "invalid_client_metadata",
            ),
            (
                with("grant_types", json!(["refresh_token"])),
                "invalid_client_metadata",
            ),
            (
                with("grant_types", json!("authorization_code")),
                "invalid_client_metadata",
            ),
            (
                with("response_types", json!(["token"])),
                "invalid_client_metadata",
            ),
            (with("response_types", json!([])), "invalid_client_metadata"),
            (with("client_name", json!(["x"])), "invalid_client_metadata"),
            (
                with("scope", json!("openid admin")),
                "invalid_client_metadata",
            ),
            (with("scope", json!("")), "invalid_client_metadata"),
            (json!([CALLBACK]), "invalid_client_metadata"),
        ];
        let count = cases.len();
        for (metadata, error) in cases {
            let (status, headers, body) = register(&fake, &metadata).await;
            assert_eq!((status, error_of(&body)), (400, error), "{metadata}");
            assert!(body["error_description"].is_string());
            assert_eq!(headers.get("cache-control").unwrap(), "no-store");
        }

        // Not JSON: a form, or a broken JSON text.
        let url = format!("{}/oauth2/register", fake.issuer());
        let mut response = client()
            .post(&url)
            .send_form(&[("redirect_uris", CALLBACK)])
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_client_metadata"
        );
        let mut response = client()
            .post(&url)
            .content_type("application/json")
            .send_body("{\"redirect_uris\": [")
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400);
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_client_metadata"
        );
        let response = client().get(&url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 405);

        assert_eq!(fake.calls(Endpoint::Register), count + 3);
        assert!(fake.registered_clients().is_empty());
    }

    #[actix_web::test]
    async fn public_client_login_with_a_resource_indicator_and_refresh() {
        let fake = FakeAuthKit::start();
        fake.set_current_user("user_01MCP");
        let id = client_id(&fake, &mcp_client_metadata()).await;
        let (verifier, challenge) = pkce();
        let code = code_for(
            &fake,
            &mcp_authorize_params(&id, &challenge, Some(RESOURCE)),
        )
        .await;
        let recorded = fake.last_authorize_params().unwrap();
        assert_eq!(recorded["resource"], RESOURCE);
        assert!(!recorded.contains_key("nonce") && !recorded.contains_key("scope"));

        let (status, body) = redeem(&fake, &id, &code, Some(&verifier), Some(RESOURCE)).await;
        assert_eq!(status, 200, "{body}");
        let access = claims(&fake, body["access_token"].as_str().unwrap());
        assert_eq!(access["aud"], RESOURCE);
        assert_eq!(access["sub"], "user_01MCP");
        // Without scope, the client gets every scope: an ID token (for the client, without a
        // nonce) and a refresh token.
        let id_token = claims(&fake, body["id_token"].as_str().unwrap());
        assert_eq!(id_token["aud"], json!(id));
        assert!(!id_token.contains_key("nonce"));
        let first_refresh = body["refresh_token"].as_str().unwrap().to_owned();

        // A refresh for another resource is refused and does not spend the token.
        let other = "http://127.0.0.1:8000/other";
        let (status, body) = refresh(&fake, &id, &first_refresh, Some(other)).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_target"));

        // Rotation: the refresh token works once; the new access token keeps the audience.
        let (status, refreshed) = refresh(&fake, &id, &first_refresh, Some(RESOURCE)).await;
        assert_eq!(status, 200, "{refreshed}");
        let renewed = claims(&fake, refreshed["access_token"].as_str().unwrap());
        assert_eq!(renewed["aud"], RESOURCE);
        assert_eq!(renewed["sid"], access["sid"]);
        let second_refresh = refreshed["refresh_token"].as_str().unwrap();
        assert_ne!(second_refresh, first_refresh);
        let (status, body) = refresh(&fake, &id, &first_refresh, Some(RESOURCE)).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));

        // Without `resource` the refresh keeps the granted audience too.
        let (status, again) = refresh(&fake, &id, second_refresh, None).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            claims(&fake, again["access_token"].as_str().unwrap())["aud"],
            RESOURCE
        );
        assert_eq!(fake.issued_access_tokens().len(), 3);
    }

    #[actix_web::test]
    async fn without_a_resource_the_audience_is_the_client_id() {
        let fake = FakeAuthKit::start();
        let id = client_id(&fake, &mcp_client_metadata()).await;
        let (verifier, challenge) = pkce();
        let params = mcp_authorize_params(&id, &challenge, None);
        let code = code_for(&fake, &params).await;
        let (status, body) = redeem(&fake, &id, &code, Some(&verifier), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            claims(&fake, body["access_token"].as_str().unwrap())["aud"],
            json!(id)
        );

        // A resource at the token endpoint that was not authorized: invalid_target.
        let code = code_for(&fake, &params).await;
        let (status, body) = redeem(&fake, &id, &code, Some(&verifier), Some(RESOURCE)).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_target"));
    }

    #[actix_web::test]
    async fn public_clients_must_use_pkce_and_no_secret() {
        let fake = FakeAuthKit::start();
        let id = client_id(&fake, &mcp_client_metadata()).await;
        let (verifier, challenge) = pkce();

        // No PKCE: refused at the authorization endpoint, back to the client.
        let no_pkce: Vec<_> = mcp_authorize_params(&id, &challenge, Some(RESOURCE))
            .into_iter()
            .filter(|(name, _)| !name.starts_with("code_challenge"))
            .collect();
        let query = authorize(&fake, &no_pkce).await;
        assert_eq!(query["error"], "invalid_request");
        assert_eq!(query["state"], "st-1");
        assert!(!query.contains_key("code"));

        let params = mcp_authorize_params(&id, &challenge, Some(RESOURCE));
        let code = code_for(&fake, &params).await;
        // A secret it does not have, in the body or the header: invalid_client, code unspent.
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier.as_str()),
        ];
        let mut with_secret = form.to_vec();
        with_secret.extend([("client_id", id.as_str()), ("client_secret", "guess")]);
        let (status, body) = token(&fake, None, &with_secret).await;
        assert_eq!((status, error_of(&body)), (401, "invalid_client"));
        let (status, body) = token(&fake, Some((&id, "")), &form).await;
        assert_eq!((status, error_of(&body)), (401, "invalid_client"));
        let (status, body) = redeem(&fake, &id, &code, Some(&verifier), None).await;
        assert_eq!(status, 200, "{body}");

        // No verifier: invalid_grant, and the code is spent.
        let code = code_for(&fake, &params).await;
        let (status, body) = redeem(&fake, &id, &code, None, None).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));
        let (status, body) = redeem(&fake, &id, &code, Some(&verifier), None).await;
        assert_eq!((status, error_of(&body)), (400, "invalid_grant"));

        // Unknown client id alone.
        let code = code_for(&fake, &params).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", "client_01UNKNOWN"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier.as_str()),
        ];
        let (status, body) = token(&fake, None, &form).await;
        assert_eq!((status, error_of(&body)), (401, "invalid_client"));
    }

    #[actix_web::test]
    async fn registered_scope_and_grant_types_bound_the_grant() {
        let fake = FakeAuthKit::start();
        let mut metadata = mcp_client_metadata();
        metadata["scope"] = json!("openid profile");
        let id = client_id(&fake, &metadata).await;
        let (verifier, challenge) = pkce();
        let mut params = mcp_authorize_params(&id, &challenge, Some(RESOURCE));
        params.push(("scope", "openid offline_access"));
        let query = authorize(&fake, &params).await;
        assert_eq!(query["error"], "invalid_scope");

        // No scope: the registered one, hence no refresh token.
        let code = code_for(
            &fake,
            &mcp_authorize_params(&id, &challenge, Some(RESOURCE)),
        )
        .await;
        let (status, body) = redeem(&fake, &id, &code, Some(&verifier), None).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("id_token").is_some());
        assert!(body.get("refresh_token").is_none());

        // A client without the refresh_token grant type gets no refresh token, and may not
        // use that grant.
        let mut metadata = mcp_client_metadata();
        metadata["grant_types"] = json!(["authorization_code"]);
        let id = client_id(&fake, &metadata).await;
        let mut params = mcp_authorize_params(&id, &challenge, Some(RESOURCE));
        params.push(("scope", "offline_access"));
        let code = code_for(&fake, &params).await;
        let (status, body) = redeem(&fake, &id, &code, Some(&verifier), None).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("refresh_token").is_none());
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", id.as_str()),
            ("refresh_token", "anything"),
        ];
        let (status, body) = token(&fake, None, &form).await;
        assert_eq!((status, error_of(&body)), (400, "unauthorized_client"));
    }

    #[actix_web::test]
    async fn confidential_registered_clients_authenticate_with_their_secret() {
        let fake = FakeAuthKit::start();
        let (_, _, registered) = register(
            &fake,
            &json!({ "redirect_uris": [CALLBACK], "grant_types": ["authorization_code", "refresh_token"] }),
        )
        .await;
        let id = registered["client_id"].as_str().unwrap();
        let secret = registered["client_secret"].as_str().unwrap();
        // PKCE is optional for a confidential client.
        let params = [
            ("response_type", "code"),
            ("client_id", id),
            ("redirect_uri", CALLBACK),
            ("state", "st-1"),
            ("scope", "openid offline_access"),
            ("resource", RESOURCE),
        ];
        let code = code_for(&fake, &params).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
        ];
        let mut without_secret = form.to_vec();
        without_secret.push(("client_id", id));
        let (status, body) = token(&fake, None, &without_secret).await;
        assert_eq!((status, error_of(&body)), (401, "invalid_client"));
        let (status, body) = token(&fake, Some((id, secret)), &form).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            claims(&fake, body["access_token"].as_str().unwrap())["aud"],
            RESOURCE
        );
        let refresh = [
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
            ("client_id", id),
            ("client_secret", secret),
        ];
        let (status, body) = token(&fake, None, &refresh).await;
        assert_eq!(status, 200, "{body}");
    }
}
