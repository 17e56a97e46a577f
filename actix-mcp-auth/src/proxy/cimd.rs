//! Clients identified by a metadata-document URL (CIMD): resolving a `client_id` URL into a
//! client record, through the shared database cache or a guarded fetch.
//!
//! The fetch resolves the host name itself, refuses the whole answer if any address is not
//! public ([`forbidden_address`]), and then connects only to the checked addresses (awc gets a
//! resolver that returns exactly those), so there is no window in which a second DNS answer
//! could point the connection elsewhere. TLS still verifies the certificate for the host name.
//!
//! One slow or dead publisher never stalls other logins: each URL has its own single-flight
//! entry (no global lock), every fetch is bounded by a short timeout, and requests queued behind
//! a failed fetch reuse its failure instead of waiting out the timeout again. When the publisher
//! is down, a cached copy is used up to 24 hours past its expiry.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_tls::connect::{Connector as TcpConnector, Resolve, Resolver};
use actix_web::http::header;
use futures_util::future::{BoxFuture, LocalBoxFuture};
use serde_json::Value;

use crate::{
    clock::unix_now,
    oauth::{
        cimd::{
            CimdDocument, CimdError, ClientIdUrl, Freshness, MAX_CACHE_SECS, MAX_DOCUMENT_BYTES,
            STALE_GRACE_SECS, forbidden_address, freshness, parse_client_id, validate_document,
        },
        client_metadata::is_json_media_type,
    },
    store::{CachedDocument, ClientRecord, Store, StoreError},
};

/// How long requests waiting behind a failed fetch of the same URL reuse its failure.
const FAILURE_MEMO: Duration = Duration::from_secs(5);
/// How long a client row made from a document lives without use: as long as its document may
/// serve (grants extend it). Short, so URL client ids that never log in cannot pile up; the row
/// is rebuilt from the document whenever needed.
const CLIENT_ROW_TTL_SECS: i64 = MAX_CACHE_SECS + STALE_GRACE_SECS;

/// Resolves host names for the metadata-document fetcher. The default uses the system resolver;
/// supply your own to use another DNS (or, in tests, to map names to chosen addresses). Every
/// address it returns is still checked before any connection.
pub trait HostResolver: Send + Sync {
    /// The addresses of `host`.
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo`, through Tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 443)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// Settings of CIMD support.
#[derive(Clone)]
pub(crate) struct CimdSettings {
    pub enabled: bool,
    /// Development mode: loopback client id URLs (http or https) are accepted and fetched.
    pub allow_loopback: bool,
    /// Bound of one fetch, connection included.
    pub timeout: Duration,
    pub tls: Arc<rustls::ClientConfig>,
    pub resolver: Arc<dyn HostResolver>,
}

impl std::fmt::Debug for CimdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CimdSettings")
            .field("enabled", &self.enabled)
            .field("allow_loopback", &self.allow_loopback)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a URL client id could not be turned into a client.
#[derive(Debug)]
pub(crate) enum CimdFailure {
    /// The client's fault (or its publisher's): shown to the user / returned as an OAuth error.
    Client(CimdError),
    /// Our database failed.
    Store(StoreError),
}

impl From<CimdError> for CimdFailure {
    fn from(e: CimdError) -> Self {
        Self::Client(e)
    }
}

impl From<StoreError> for CimdFailure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

type Flight = Arc<tokio::sync::Mutex<Option<(Instant, CimdError)>>>;

/// Resolves URL client ids; one per provider, shared by every worker.
pub(crate) struct CimdClients {
    settings: CimdSettings,
    supported_scopes: Vec<String>,
    policy: crate::oauth::redirect_uri::RedirectUriPolicy,
    flights: Mutex<HashMap<String, Flight>>,
    /// Addresses handed to the HTTP connector (connection attempts), for tests.
    connects: Mutex<Vec<SocketAddr>>,
}

impl CimdClients {
    pub(crate) fn new(
        settings: CimdSettings,
        policy: crate::oauth::redirect_uri::RedirectUriPolicy,
        supported_scopes: Vec<String>,
    ) -> Self {
        Self {
            settings,
            supported_scopes,
            policy,
            flights: Mutex::default(),
            connects: Mutex::default(),
        }
    }

    /// Every address a connection was attempted to, oldest first.
    pub(crate) fn connection_attempts(&self) -> Vec<SocketAddr> {
        self.connects.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The client record of the URL `client_id`: from a fresh cached document, else fetched
    /// (once per URL at a time), else from a stale copy when the publisher is unavailable.
    pub(crate) async fn client(
        &self,
        store: &Store,
        client_id: &str,
    ) -> Result<ClientRecord, CimdFailure> {
        if !self.settings.enabled {
            return Err(CimdError::Disabled.into());
        }
        let id = parse_client_id(client_id, self.settings.allow_loopback)?;
        if let Some(client) = self.fresh_client(store, client_id).await? {
            return Ok(client);
        }
        let flight = self.flight(client_id);
        let result = self.fly(store, &id, &flight).await;
        self.land(client_id, flight);
        result
    }

    /// The fetch of one URL, one request at a time; the ones queued behind a failure reuse it.
    async fn fly(
        &self,
        store: &Store,
        id: &ClientIdUrl,
        flight: &Flight,
    ) -> Result<ClientRecord, CimdFailure> {
        let mut memo = flight.lock().await;
        if let Some((at, error)) = memo.as_ref()
            && at.elapsed() < FAILURE_MEMO
        {
            return Err(CimdFailure::Client(error.clone()));
        }
        // Whoever held the lock before may just have refreshed the document.
        if let Some(client) = self.fresh_client(store, id.url.as_str()).await? {
            return Ok(client);
        }
        let result = self.refresh(store, id).await;
        if let Err(CimdFailure::Client(error)) = &result {
            *memo = Some((Instant::now(), error.clone()));
        }
        result
    }

    /// The client of a cached, still fresh document.
    async fn fresh_client(
        &self,
        store: &Store,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, CimdFailure> {
        let Some(cached) = store.get_cimd_document(client_id).await? else {
            return Ok(None);
        };
        if cached.fresh_until <= unix_now() {
            return Ok(None);
        }
        if let Some(client) = store.get_client(client_id).await? {
            return Ok(Some(client));
        }
        // The client row expired while the document is fresh: rebuild it from the document.
        let doc = self.validate(client_id, cached.document.as_bytes())?;
        let client = client_record(&doc);
        store.save_cimd_client(&client, None).await?;
        Ok(Some(client))
    }

    fn flight(&self, url: &str) -> Flight {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        flights.entry(url.to_owned()).or_default().clone()
    }

    /// Drops the URL's single-flight entry when nobody else waits on it.
    fn land(&self, url: &str, flight: Flight) {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        // One reference in the map, one here: nobody else is queued.
        if Arc::strong_count(&flight) <= 2 {
            flights.remove(url);
        }
    }

    fn validate(&self, client_id: &str, body: &[u8]) -> Result<CimdDocument, CimdError> {
        validate_document(client_id, body, &self.policy, &self.supported_scopes)
    }

    /// Fetches the document, validates it and saves it with its client; falls back to a stale
    /// copy when the publisher is unavailable.
    async fn refresh(&self, store: &Store, id: &ClientIdUrl) -> Result<ClientRecord, CimdFailure> {
        let client_id = id.url.as_str();
        let fetched = match self.fetch(id).await {
            Ok(fetched) => fetched,
            Err(error) if error.host_unavailable() => {
                return self.stale(store, client_id, error).await;
            }
            Err(error) => {
                tracing::info!(client_id, %error, "client metadata document refused");
                return Err(error.into());
            }
        };
        let doc = self
            .validate(client_id, &fetched.body)
            .inspect_err(|error| {
                tracing::info!(client_id, %error, "client metadata document refused");
            })?;
        let client = client_record(&doc);
        let now = unix_now();
        match fetched.freshness {
            Freshness::NoStore => {
                // Keep no copy, not even an older one.
                store.delete_cimd_document(client_id).await?;
                store.save_cimd_client(&client, None).await?;
            }
            Freshness::Seconds(secs) => {
                let cached = CachedDocument {
                    url: client_id.to_owned(),
                    document: String::from_utf8_lossy(&fetched.body).into_owned(),
                    fetched_at: now,
                    fresh_until: now + secs,
                    expires_at: now + secs + STALE_GRACE_SECS,
                };
                store.save_cimd_client(&client, Some(&cached)).await?;
            }
        }
        Ok(client)
    }

    /// A stale cached copy (at most [`STALE_GRACE_SECS`] past its expiry) while the publisher
    /// is down; otherwise the fetch error.
    async fn stale(
        &self,
        store: &Store,
        client_id: &str,
        error: CimdError,
    ) -> Result<ClientRecord, CimdFailure> {
        let Some(cached) = store.get_cimd_document(client_id).await? else {
            tracing::warn!(client_id, %error, "client metadata document unavailable");
            return Err(error.into());
        };
        tracing::warn!(client_id, %error, "client metadata document unavailable; using the cached copy");
        let doc = self.validate(client_id, cached.document.as_bytes())?;
        if let Some(client) = store.get_client(client_id).await? {
            return Ok(client);
        }
        let client = client_record(&doc);
        store.save_cimd_client(&client, None).await?;
        Ok(client)
    }

    /// Resolves the host and checks every address before any connection.
    async fn vetted_addresses(&self, id: &ClientIdUrl) -> Result<Vec<IpAddr>, CimdError> {
        let addresses = match id.host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                let lookup = self.settings.resolver.resolve(&id.host);
                tokio::time::timeout(self.settings.timeout, lookup)
                    .await
                    .map_err(|_| CimdError::Resolve)?
                    .map_err(|_| CimdError::Resolve)?
            }
        };
        if addresses.is_empty() {
            return Err(CimdError::Resolve);
        }
        // Loopback addresses only for a loopback URL in development mode: a public name that
        // resolves to loopback is refused even then.
        let allow_loopback = self.settings.allow_loopback && id.loopback;
        for ip in &addresses {
            if let Some(class) = forbidden_address(*ip, allow_loopback) {
                tracing::warn!(host = %id.host, address = %ip, %class, "client id host refused");
                return Err(CimdError::ForbiddenAddress(class));
            }
        }
        Ok(addresses)
    }

    async fn fetch(&self, id: &ClientIdUrl) -> Result<Fetched, CimdError> {
        let addresses = self.vetted_addresses(id).await?;
        let pinned: Vec<SocketAddr> = addresses
            .into_iter()
            .map(|ip| SocketAddr::new(ip, id.port))
            .collect();
        if let Ok(mut connects) = self.connects.lock() {
            connects.extend(pinned.iter().copied());
        }
        let timeout = self.settings.timeout;
        let connector = awc::Connector::new()
            .connector(TcpConnector::new(Resolver::custom(Pinned(pinned))).service())
            .rustls_0_23(self.settings.tls.clone())
            .timeout(timeout);
        let client = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .timeout(timeout)
            .finish();
        let exchange = async {
            let mut res = client
                .get(id.url.as_str())
                .insert_header((header::ACCEPT, "application/json"))
                .send()
                .await
                .map_err(|_| CimdError::Unreachable)?;
            let status = res.status();
            if status.is_redirection() {
                return Err(CimdError::Redirect);
            }
            if status.as_u16() != 200 {
                return Err(CimdError::Status(status.as_u16()));
            }
            let headers = res.headers();
            let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
            if !text(header::CONTENT_TYPE).is_some_and(is_json_media_type) {
                return Err(CimdError::ContentType);
            }
            let date = |name| text(name).and_then(http_date);
            let freshness = freshness(
                text(header::CACHE_CONTROL),
                // An unparsable Expires means "already expired" (RFC 9111 §5.3).
                text(header::EXPIRES).map(|v| http_date(v).unwrap_or(0)),
                date(header::DATE),
                unix_now(),
            );
            let body = res
                .body()
                .limit(MAX_DOCUMENT_BYTES)
                .await
                .map_err(|e| match e {
                    awc::error::PayloadError::Overflow => CimdError::TooLarge,
                    _ => CimdError::Unreachable,
                })?;
            Ok(Fetched {
                body: body.to_vec(),
                freshness,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(CimdError::Unreachable))
    }
}

fn http_date(value: &str) -> Option<i64> {
    let time: std::time::SystemTime = value.parse::<header::HttpDate>().ok()?.into();
    let secs = time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

struct Fetched {
    body: Vec<u8>,
    freshness: Freshness,
}

/// The connector's resolver: the addresses we already checked, whatever the host.
struct Pinned(Vec<SocketAddr>);

impl Resolve for Pinned {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}

/// The client row of a validated document: a public client (`none`).
fn client_record(doc: &CimdDocument) -> ClientRecord {
    let now = unix_now();
    let mut metadata = doc.extra.clone();
    metadata.insert("client_id_metadata_document".into(), Value::Bool(true));
    metadata.insert(
        "application_type".into(),
        Value::String(doc.application_type.clone()),
    );
    ClientRecord {
        client_id: doc.client_id.clone(),
        client_secret_hash: None,
        client_name: doc.client_name.clone(),
        redirect_uris: doc.redirect_uris.clone(),
        grant_types: doc.grant_types.clone(),
        token_endpoint_auth_method: "none".to_owned(),
        scope: doc.scope.clone(),
        metadata: Some(Value::Object(metadata)),
        created_at: now,
        last_used_at: now,
        expires_at: now + CLIENT_ROW_TTL_SECS,
    }
}
