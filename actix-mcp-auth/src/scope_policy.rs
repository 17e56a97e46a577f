//! [`ScopePolicy`]: which scopes each MCP method, tool, resource or prompt needs.
//!
//! Logging a user in says who they are, not what they may do. A policy maps MCP requests to the
//! scopes their token must carry, so that [`BearerAuth`](crate::BearerAuth) can refuse a call with
//! 403 `insufficient_scope` *before* the MCP service runs, and the client can step up (ask the
//! user for the missing scopes and retry). The policy is a plain value: no actix, no I/O.
//!
//! # Rules
//!
//! A rule's key is an MCP method, optionally with the name it targets:
//!
//! | key | matches |
//! |---|---|
//! | `tools/call:delete_repo` | `tools/call` of the tool `delete_repo` |
//! | `resources/read:file:///secret/*` | `resources/read` of any URI starting with `file:///secret/` |
//! | `tools/call` | every `tools/call` no name rule matched |
//! | `resources/read` | the method alone |
//! | `*` | everything else (the default) |
//!
//! The most specific rule wins: an exact name, then the longest name prefix, then the method,
//! then the default. Rules do not add up: `tools/call:deploy=ops` with `*=mcp` lets a token with
//! only `ops` call `deploy`; write `tools/call:deploy=mcp ops` to need both. Names are only
//! allowed on the methods that carry one (`tools/call`, `prompts/get`: `params.name`;
//! `resources/read`, `resources/subscribe`, `resources/unsubscribe`: `params.uri`).
//!
//! An implication `files:write>files:read` makes a token with `files:write` satisfy a rule
//! needing `files:read` (chains such as `admin>write>read` are transitive).
//!
//! # `MCP_AUTH_TOOL_SCOPES`
//!
//! The same policy in one line, entries separated by `;` (or new lines):
//!
//! ```text
//! tools/call:delete_repo=repo:admin; resources/read=files:read; *=mcp; files:write>files:read
//! ```
//!
//! `key=scopes` is a rule (scopes space- or comma-separated, all required); `a>b` is an
//! implication. Names containing `;` or `=` can only be given through the builder. An entry
//! that cannot be used fails the start-up with an error naming it.
//!
//! # Requests the middleware cannot read
//!
//! The policy never fails open. A body that is not JSON-RPC (or a message without a method)
//! needs the default scopes; a body larger than [`ScopePolicyBuilder::max_body_size`] or sent
//! with a `Content-Encoding` could be any request, so it needs every scope the policy names.

use std::{collections::HashMap, fmt, sync::Arc};

use crate::{
    error::ConfigError,
    mcp_request::{Classification, NAMED_METHODS},
    oauth::scope::parse_list,
};

/// Default largest request body the middleware reads to classify a request (1 MiB: more than
/// actix-web's default body limits, so a body too large for us is too large for the service).
pub const DEFAULT_MAX_BODY_SIZE: usize = 1024 * 1024;

/// Which scopes each MCP request needs; see the [module documentation](self) for the rules and
/// the `MCP_AUTH_TOOL_SCOPES` syntax.
///
/// ```
/// use actix_mcp_auth::ScopePolicy;
///
/// let policy = ScopePolicy::builder()
///     .tool("delete_repo", ["repo:admin"])
///     .require("resources/read", ["files:read"])
///     .default_scopes(["mcp"])
///     .implies("files:write", "files:read")
///     .build()
///     .unwrap();
/// assert_eq!(policy.scopes_for("tools/call", Some("delete_repo")), ["repo:admin"]);
/// assert_eq!(policy.scopes_for("tools/list", None), ["mcp"]);
///
/// let same: ScopePolicy =
///     "tools/call:delete_repo=repo:admin; resources/read=files:read; *=mcp; files:write>files:read"
///         .parse()
///         .unwrap();
/// assert_eq!(same.scopes(), policy.scopes());
/// ```
///
/// Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct ScopePolicy {
    rules: Arc<Rules>,
}

struct Rules {
    methods: HashMap<String, MethodRules>,
    default: Vec<String>,
    /// For each scope, the other scopes that imply it (transitively).
    implied_by: HashMap<String, Vec<String>>,
    /// Every scope the policy names, in order of first mention.
    scopes: Vec<String>,
    max_body_size: usize,
}

#[derive(Default)]
struct MethodRules {
    any_name: Option<Vec<String>>,
    names: HashMap<String, Vec<String>>,
    /// Name prefixes, longest first.
    prefixes: Vec<(String, Vec<String>)>,
}

impl fmt::Debug for ScopePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopePolicy")
            .field("scopes", &self.rules.scopes)
            .field("default", &self.rules.default)
            .finish_non_exhaustive()
    }
}

impl std::str::FromStr for ScopePolicy {
    type Err = ConfigError;

    /// Parses the `MCP_AUTH_TOOL_SCOPES` syntax; errors name that variable.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse("MCP_AUTH_TOOL_SCOPES", value)
    }
}

impl ScopePolicy {
    /// Starts a builder (no rules, default body limit).
    pub fn builder() -> ScopePolicyBuilder {
        ScopePolicyBuilder::new("tool_scopes")
    }

    /// Parses the compact syntax (see the [module documentation](self)); errors name `setting`.
    pub fn parse(setting: &'static str, value: &str) -> Result<Self, ConfigError> {
        let mut builder = ScopePolicyBuilder::new(setting);
        for entry in value.split([';', '\n']).map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            if let Some((key, scopes)) = entry.split_once('=') {
                builder = builder.require(key.trim(), parse_list(scopes));
            } else if entry.contains('>') {
                let chain: Vec<&str> = entry.split('>').map(str::trim).collect();
                for pair in chain.windows(2) {
                    builder = builder.implies(pair[0], pair[1]);
                }
            } else {
                return Err(entry_error(
                    setting,
                    entry,
                    "expected `method[:name]=scopes` or `scope>implied-scope`",
                ));
            }
        }
        builder.build()
    }

    /// The scopes a request of `method` targeting `name` needs (the most specific rule's, or
    /// the default's; empty when neither applies).
    pub fn scopes_for(&self, method: &str, name: Option<&str>) -> &[String] {
        let Some(rules) = self.rules.methods.get(method) else {
            return &self.rules.default;
        };
        let by_name = name.and_then(|name| {
            rules.names.get(name).or_else(|| {
                rules
                    .prefixes
                    .iter()
                    .find(|(prefix, _)| name.starts_with(prefix.as_str()))
                    .map(|(_, scopes)| scopes)
            })
        });
        by_name
            .or(rules.any_name.as_ref())
            .unwrap_or(&self.rules.default)
    }

    /// Every scope the policy names (rules, default, implications), without duplicates: the
    /// scopes announced in protected-resource metadata.
    pub fn scopes(&self) -> &[String] {
        &self.rules.scopes
    }

    /// Appends the scopes this policy names to `scopes` (those missing), after the configured
    /// ones: what metadata lists and what proxy-mode clients may ask for, so a client refused
    /// with 403 `insufficient_scope` learns it may ask for them.
    pub(crate) fn add_scopes_to(&self, scopes: &mut Vec<String>) {
        for scope in self.scopes() {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
    }

    /// The scopes every request needs when no rule matches it.
    pub fn default_scopes(&self) -> &[String] {
        &self.rules.default
    }

    /// Largest body read to classify a request.
    pub fn max_body_size(&self) -> usize {
        self.rules.max_body_size
    }

    /// Whether the decision can depend on the request body (some rule besides the default).
    pub(crate) fn needs_body(&self) -> bool {
        !self.rules.methods.is_empty()
    }

    /// Whether a token granted `granted` holds `scope`, directly or through an implication.
    pub fn is_satisfied(&self, granted: &[String], scope: &str) -> bool {
        granted.iter().any(|g| g == scope)
            || self
                .rules
                .implied_by
                .get(scope)
                .is_some_and(|implying| granted.iter().any(|g| implying.contains(g)))
    }

    /// Every scope a classified request needs: `base` first, then what each message needs,
    /// without duplicates.
    pub(crate) fn needed<'p>(
        &'p self,
        base: &'p [String],
        request: &Classification<'_>,
    ) -> Vec<&'p str> {
        let mut needed: Vec<&'p str> = Vec::with_capacity(base.len() + 2);
        let mut add = |scopes: &'p [String]| {
            for scope in scopes {
                if !needed.contains(&scope.as_str()) {
                    needed.push(scope);
                }
            }
        };
        add(base);
        for call in &request.calls {
            add(self.scopes_for(&call.method, call.name.as_deref()));
        }
        if request.undetermined {
            add(&self.rules.default);
        }
        if request.unreadable {
            add(&self.rules.scopes);
        }
        needed
    }
}

fn entry_error(setting: &str, entry: &str, reason: &str) -> ConfigError {
    ConfigError::invalid(setting, format!("entry `{entry}`: {reason}"))
}

/// Builder of a [`ScopePolicy`]. Setters never fail; [`build`](Self::build) reports the first
/// unusable entry, by name.
#[must_use]
#[derive(Debug, Clone)]
pub struct ScopePolicyBuilder {
    setting: &'static str,
    rules: Vec<(String, Vec<String>)>,
    implications: Vec<(String, String)>,
    max_body_size: usize,
}

impl ScopePolicyBuilder {
    fn new(setting: &'static str) -> Self {
        Self {
            setting,
            rules: Vec::new(),
            implications: Vec::new(),
            max_body_size: DEFAULT_MAX_BODY_SIZE,
        }
    }

    /// Requires every one of `scopes` for requests matching `key` (`method`, `method:name`,
    /// `method:prefix*` or `*`).
    pub fn require<I, S>(mut self, key: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rules
            .push((key.into(), scopes.into_iter().map(Into::into).collect()));
        self
    }

    /// Requires `scopes` for `tools/call` of the tool `name`.
    pub fn tool<I, S>(self, name: &str, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.require(format!("tools/call:{name}"), scopes)
    }

    /// Requires `scopes` for every request no other rule matches.
    pub fn default_scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.require("*", scopes)
    }

    /// Declares that a token holding `scope` also satisfies rules needing `implied`.
    pub fn implies(mut self, scope: impl Into<String>, implied: impl Into<String>) -> Self {
        self.implications.push((scope.into(), implied.into()));
        self
    }

    /// Largest request body read to classify a request (default
    /// [`DEFAULT_MAX_BODY_SIZE`]); a larger one needs every scope of the policy.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// Validates the rules and builds the policy.
    pub fn build(self) -> Result<ScopePolicy, ConfigError> {
        let setting = self.setting;
        if self.max_body_size == 0 {
            return Err(ConfigError::invalid(
                setting,
                "the body size limit must be positive",
            ));
        }
        let mut scopes: Vec<String> = Vec::new();
        let mut mention = |scope: &str| {
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        };
        let mut methods: HashMap<String, MethodRules> = HashMap::new();
        let mut default: Option<Vec<String>> = None;
        let mut seen: Vec<String> = Vec::new();
        for (key, required) in self.rules {
            let entry = format!("{key}={}", required.join(" "));
            let fail = |reason: &str| entry_error(setting, &entry, reason);
            check_scopes(&required).map_err(fail)?;
            if seen.contains(&key) {
                return Err(fail("this key is given twice"));
            }
            seen.push(key.clone());
            required.iter().for_each(|s| mention(s));
            if key == "*" {
                default = Some(required);
                continue;
            }
            let (method, name) = match key.split_once(':') {
                Some((method, name)) => (method, Some(name)),
                None => (key.as_str(), None),
            };
            if !is_method(method) {
                return Err(fail("not an MCP method name"));
            }
            let rules = methods.entry(method.to_owned()).or_default();
            match name {
                None => rules.any_name = Some(required),
                Some(name) => {
                    if !NAMED_METHODS.contains(&method) {
                        return Err(fail(
                            "only tools/call, prompts/get and resources/read, /subscribe, \
                             /unsubscribe target a name",
                        ));
                    }
                    add_name_rule(rules, name, required).map_err(fail)?;
                }
            }
        }
        for rules in methods.values_mut() {
            rules
                .prefixes
                .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        }
        for (scope, implied) in &self.implications {
            let entry = format!("{scope}>{implied}");
            check_scopes(&[scope.clone(), implied.clone()])
                .map_err(|reason| entry_error(setting, &entry, reason))?;
            if scope == implied {
                return Err(entry_error(setting, &entry, "a scope implying itself"));
            }
            mention(scope);
            mention(implied);
        }
        Ok(ScopePolicy {
            rules: Arc::new(Rules {
                methods,
                default: default.unwrap_or_default(),
                implied_by: implied_by(&self.implications),
                scopes,
                max_body_size: self.max_body_size,
            }),
        })
    }
}

/// Adds a name rule: exact, or a prefix when the name ends with `*`.
fn add_name_rule(
    rules: &mut MethodRules,
    name: &str,
    required: Vec<String>,
) -> Result<(), &'static str> {
    if name.is_empty() || name == "*" {
        return Err("an empty name; give the method alone to match every name");
    }
    if name.chars().any(char::is_control) {
        return Err("a name with control characters");
    }
    match name.strip_suffix('*') {
        Some(prefix) => rules.prefixes.push((prefix.to_owned(), required)),
        None => {
            rules.names.insert(name.to_owned(), required);
        }
    }
    Ok(())
}

/// Every scope syntactically valid (RFC 6749 §3.3), and at least one.
fn check_scopes(scopes: &[String]) -> Result<(), &'static str> {
    if scopes.is_empty() {
        return Err("no scopes");
    }
    let valid = |scope: &String| {
        crate::oauth::scope::parse(scope).is_some_and(|parsed| parsed == [scope.as_str()])
    };
    if scopes.iter().all(valid) {
        Ok(())
    } else {
        Err("not a valid scope list")
    }
}

/// A JSON-RPC method name as MCP uses them: letters, digits and `/_-.$`.
fn is_method(method: &str) -> bool {
    !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.$".contains(&b))
}

/// For each implied scope, every scope implying it, following chains.
fn implied_by(implications: &[(String, String)]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (_, implied) in implications {
        if out.contains_key(implied) {
            continue;
        }
        // Walk backwards from `implied` over the edges `a > b`.
        let mut found: Vec<String> = Vec::new();
        let mut frontier = vec![implied.clone()];
        while let Some(target) = frontier.pop() {
            for (scope, to) in implications {
                if *to == target && *scope != *implied && !found.contains(scope) {
                    found.push(scope.clone());
                    frontier.push(scope.clone());
                }
            }
        }
        out.insert(implied.clone(), found);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::mcp_request::Call;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn policy(syntax: &str) -> ScopePolicy {
        syntax.parse().unwrap()
    }

    fn calls(pairs: &[(&'static str, Option<&'static str>)]) -> Classification<'static> {
        Classification {
            calls: pairs
                .iter()
                .map(|(method, name)| Call {
                    method: Cow::Borrowed(method),
                    name: name.map(Cow::Borrowed),
                })
                .collect(),
            ..Classification::default()
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let p = policy(
            "tools/call:delete_repo=repo:admin; tools/call:admin_*=mcp:admin; \
             tools/call:admin_super*=root; tools/call=mcp:tools; resources/read=files:read; *=mcp",
        );
        assert_eq!(
            p.scopes_for("tools/call", Some("delete_repo")),
            ["repo:admin"]
        );
        assert_eq!(
            p.scopes_for("tools/call", Some("admin_echo")),
            ["mcp:admin"]
        );
        assert_eq!(
            p.scopes_for("tools/call", Some("admin_superuser")),
            ["root"]
        );
        assert_eq!(p.scopes_for("tools/call", Some("echo")), ["mcp:tools"]);
        assert_eq!(p.scopes_for("tools/call", None), ["mcp:tools"]);
        assert_eq!(
            p.scopes_for("resources/read", Some("file:///x")),
            ["files:read"]
        );
        assert_eq!(p.scopes_for("tools/list", None), ["mcp"]);
        assert_eq!(
            p.scopes(),
            v(&[
                "repo:admin",
                "mcp:admin",
                "root",
                "mcp:tools",
                "files:read",
                "mcp"
            ])
        );
        assert!(p.needs_body());
    }

    #[test]
    fn syntax_accepts_lists_new_lines_and_chains() {
        let p = policy("\n tools/call:deploy = ops, mcp ;\n*=mcp\nadmin>write>read;");
        assert_eq!(p.scopes_for("tools/call", Some("deploy")), ["ops", "mcp"]);
        assert!(p.is_satisfied(&v(&["admin"]), "read"));
        assert!(p.is_satisfied(&v(&["write"]), "read"));
        assert!(!p.is_satisfied(&v(&["read"]), "write"));
        assert!(!p.is_satisfied(&v(&["other"]), "read"));
        assert!(p.is_satisfied(&v(&["read"]), "read"));
        // A policy with only a default never needs the body.
        assert!(!policy("*=mcp").needs_body());
        assert_eq!(
            policy("").scopes_for("tools/call", Some("x")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn resource_names_may_contain_colons() {
        let p = policy("resources/read:file:///secret/*=files:admin; resources/read=files:read");
        assert_eq!(
            p.scopes_for("resources/read", Some("file:///secret/a")),
            ["files:admin"]
        );
        assert_eq!(
            p.scopes_for("resources/read", Some("file:///public")),
            ["files:read"]
        );
    }

    #[test]
    fn invalid_entries_are_named() {
        for (syntax, entry) in [
            ("tools/call:x=", "tools/call:x="),
            ("just-a-word", "just-a-word"),
            ("tools/list:x=mcp", "tools/list:x=mcp"),
            ("tools call=mcp", "tools call=mcp"),
            ("=mcp", "=mcp"),
            ("tools/call:=mcp", "tools/call:=mcp"),
            ("tools/call:x=a\"b", "tools/call:x=a\"b"),
            ("*=a; *=b", "*=b"),
            ("tools/call:x=a; tools/call:x=b", "tools/call:x=b"),
            ("a>a", "a>a"),
            ("a>", "a>"),
        ] {
            let err = syntax.parse::<ScopePolicy>().unwrap_err().to_string();
            assert!(
                err.starts_with("MCP_AUTH_TOOL_SCOPES is invalid: entry `")
                    && err.contains(&format!("`{entry}`")),
                "{syntax:?}: {err}"
            );
        }
        let err = ScopePolicy::builder()
            .tool("", ["x"])
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("tool_scopes is invalid"), "{err}");
        assert!(ScopePolicy::builder().max_body_size(0).build().is_err());
    }

    #[test]
    fn needed_scopes_cover_every_message_without_duplicates() {
        let p = policy("tools/call:delete_repo=repo:admin mcp; prompts/get=prompts; *=mcp");
        let base = v(&["openid"]);
        let req = calls(&[
            ("tools/call", Some("delete_repo")),
            ("prompts/get", Some("p")),
            ("tools/list", None),
        ]);
        assert_eq!(
            p.needed(&base, &req),
            ["openid", "repo:admin", "mcp", "prompts"]
        );
        let undetermined = Classification {
            undetermined: true,
            ..Classification::default()
        };
        assert_eq!(p.needed(&base, &undetermined), ["openid", "mcp"]);
        // A body that could not be read could be any request: everything the policy names.
        let unreadable = Classification {
            unreadable: true,
            ..Classification::default()
        };
        assert_eq!(p.needed(&[], &unreadable), ["repo:admin", "mcp", "prompts"]);
    }
}
