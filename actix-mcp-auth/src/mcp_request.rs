//! What an MCP request asks for: its JSON-RPC method(s) and the tool, prompt or resource each
//! one targets. Sans-IO: plain bytes in, a [`Classification`] out.
//!
//! MCP 2026-07-28 (SEP-2243) has clients mirror the body into headers: `Mcp-Method` (the
//! JSON-RPC `method`) and `Mcp-Name` (`params.name` of `tools/call` and `prompts/get`,
//! `params.uri` of `resources/read`, `/subscribe`, `/unsubscribe`), a value that is not plain
//! ASCII being sent as `=?base64?…?=`. Older clients send no headers, and may send batches.
//!
//! Headers are never trusted alone: the MCP service acts on the body, so an authorization
//! decision taken from headers the body contradicts would let a client call one tool while
//! showing another. When headers are present, they must agree with the body (else
//! [`Mismatch`], answered 400); the body decides.

use std::borrow::Cow;

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The methods whose requests target a name, and where the name is.
pub(crate) const NAMED_METHODS: [&str; 5] = [
    "tools/call",
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// One JSON-RPC message's method and the name it targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call<'a> {
    pub method: Cow<'a, str>,
    pub name: Option<Cow<'a, str>>,
}

/// The body as the middleware could read it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    /// No body (or not read: the method is not POST).
    Absent,
    /// The complete body.
    Complete(&'a [u8]),
    /// A body that could not be read: larger than the limit, or content-encoded.
    Unreadable,
}

/// What a request asks for, as far as it can be told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Classification<'a> {
    /// The messages whose method (and name) are known.
    pub calls: Vec<Call<'a>>,
    /// Some part of the request has no determinable method (no body, not JSON-RPC, a response
    /// message): it needs the default scopes.
    pub undetermined: bool,
    /// The body could not be read at all: it could be any request.
    pub unreadable: bool,
}

/// The `Mcp-Method`/`Mcp-Name` headers are malformed or contradict the body (SEP-2243's
/// `HeaderMismatch`, answered with HTTP 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mismatch(pub &'static str);

/// The request as its headers describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderCall {
    method: String,
    name: Option<String>,
}

/// Reads `Mcp-Method` and `Mcp-Name` (all values of each). `Ok(None)` when neither is sent.
pub(crate) fn read_headers(
    method: &[&[u8]],
    name: &[&[u8]],
) -> Result<Option<HeaderCall>, Mismatch> {
    let (method, name) = match (method, name) {
        ([], []) => return Ok(None),
        ([], _) => return Err(Mismatch("Mcp-Name without Mcp-Method")),
        ([method], []) => (*method, None),
        ([method], [name]) => (*method, Some(*name)),
        _ => return Err(Mismatch("repeated Mcp-Method or Mcp-Name header")),
    };
    let method = std::str::from_utf8(method)
        .ok()
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(Mismatch("malformed Mcp-Method header"))?;
    let name = name
        .map(|value| decode_name(value).ok_or(Mismatch("malformed Mcp-Name header")))
        .transpose()?;
    Ok(Some(HeaderCall {
        method: method.to_owned(),
        name,
    }))
}

/// An `Mcp-Name` value: plain visible ASCII, or `=?base64?<standard base64>?=` of UTF-8.
fn decode_name(value: &[u8]) -> Option<String> {
    const BASE64: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    match value
        .strip_prefix(b"=?base64?")
        .and_then(|rest| rest.strip_suffix(b"?="))
    {
        Some(encoded) => String::from_utf8(BASE64.decode(encoded).ok()?).ok(),
        None => std::str::from_utf8(value)
            .ok()
            .filter(|v| v.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
            .map(str::to_owned),
    }
}

/// Classifies a request from its headers (if sent) and body.
pub(crate) fn classify<'a>(
    headers: Option<&HeaderCall>,
    body: Body<'a>,
) -> Result<Classification<'a>, Mismatch> {
    let mut request = match body {
        Body::Absent => Classification {
            undetermined: true,
            ..Classification::default()
        },
        Body::Unreadable => Classification {
            unreadable: true,
            ..Classification::default()
        },
        Body::Complete(bytes) => parse_body(bytes),
    };
    let Some(headers) = headers else {
        return Ok(request);
    };
    if request.calls.is_empty() {
        // Nothing in the body to compare with: the headers' call counts too, on top of what
        // the unreadable or undetermined body already needs.
        request.calls.push(Call {
            method: Cow::Owned(headers.method.clone()),
            name: headers.name.clone().map(Cow::Owned),
        });
        return Ok(request);
    }
    let [call] = request.calls.as_slice() else {
        return Err(Mismatch(
            "Mcp-Method describes one message; the body is a batch",
        ));
    };
    if request.undetermined || call.method != headers.method.as_str() {
        return Err(Mismatch("Mcp-Method does not match the body"));
    }
    if call.name.as_deref() != headers.name.as_deref() && is_named(&call.method) {
        return Err(Mismatch("Mcp-Name does not match the body"));
    }
    Ok(request)
}

fn is_named(method: &str) -> bool {
    NAMED_METHODS.contains(&method)
}

/// The calls of a JSON-RPC body: one message or a batch. Anything else is undetermined.
fn parse_body(bytes: &[u8]) -> Classification<'_> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let messages = match de.deserialize_any(BodyVisitor) {
        Ok(messages) if de.end().is_ok() => messages,
        _ => {
            return Classification {
                undetermined: true,
                ..Classification::default()
            };
        }
    };
    let mut request = Classification {
        undetermined: messages.is_empty(),
        ..Classification::default()
    };
    for message in messages {
        match message.into_call() {
            Some(call) => request.calls.push(call),
            None => request.undetermined = true,
        }
    }
    request
}

/// A string, borrowed from the body unless it had escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// A string, or `None` for any other JSON value (a non-string name targets nothing the policy
/// can name; the service refuses such a request anyway).
struct MaybeText<'a>(Option<Cow<'a, str>>);

impl<'de> de::Deserialize<'de> for MaybeText<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MaybeTextVisitor;
        impl<'de> Visitor<'de> for MaybeTextVisitor {
            type Value = MaybeText<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeText(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeText(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeText(None))
            }
        }
        deserializer.deserialize_any(MaybeTextVisitor)
    }
}

/// The fields of one message the policy looks at. Repeated keys: the last one wins, as with
/// `serde_json::Value` (typed deserializers refuse duplicates, so no service reads another).
#[derive(Default)]
struct Message<'a> {
    method: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
}

impl<'a> Message<'a> {
    fn into_call(self) -> Option<Call<'a>> {
        let method = self.method?;
        let name = match &*method {
            "tools/call" | "prompts/get" => self.name,
            m if is_named(m) => self.uri,
            _ => None,
        };
        Some(Call { method, name })
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Vec<Message<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-RPC message or batch")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(vec![MessageVisitor.visit_map(map)?])
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut messages = Vec::new();
        while let Some(message) = seq.next_element::<MessageValue<'de>>()? {
            messages.push(message.0);
        }
        Ok(messages)
    }
}

struct MessageValue<'a>(Message<'a>);

impl<'de> de::Deserialize<'de> for MessageValue<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(MessageVisitor)
            .map(MessageValue)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-RPC message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut message = Message::default();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key.0 {
                "method" => message.method = Some(map.next_value::<Text<'de>>()?.0),
                "params" => {
                    let params = map.next_value::<Params<'de>>()?;
                    message.name = params.name;
                    message.uri = params.uri;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(message)
    }
}

/// `params.name` and `params.uri` (both `None` when `params` is not an object).
#[derive(Default)]
struct Params<'a> {
    name: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
}

impl<'de> de::Deserialize<'de> for Params<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON-RPC params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut params = Params::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match &*key.0 {
                        "name" => params.name = map.next_value::<MaybeText<'de>>()?.0,
                        "uri" => params.uri = map.next_value::<MaybeText<'de>>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(params)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Params::default())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Params::default())
            }
        }
        deserializer.deserialize_any(ParamsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, name: Option<&str>) -> Call<'static> {
        Call {
            method: Cow::Owned(method.to_owned()),
            name: name.map(|n| Cow::Owned(n.to_owned())),
        }
    }

    fn body(json: &str) -> Classification<'_> {
        classify(None, Body::Complete(json.as_bytes())).unwrap()
    }

    fn headers(method: &str, name: Option<&str>) -> HeaderCall {
        read_headers(&[method.as_bytes()], name.map(str::as_bytes).as_slice())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn single_requests_name_their_target() {
        let req = body(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call",
                "params":{"arguments":{"name":"decoy","x":[1,{"uri":"u"}]},"name":"delete_repo"}}"#,
        );
        assert_eq!(req.calls, vec![call("tools/call", Some("delete_repo"))]);
        assert!(!req.undetermined && !req.unreadable);
        let req = body(r#"{"method":"resources/read","params":{"uri":"file:///a","name":"n"}}"#);
        assert_eq!(req.calls, vec![call("resources/read", Some("file:///a"))]);
        let req = body(r#"{"method":"tools/list","params":{"name":"ignored"}}"#);
        assert_eq!(req.calls, vec![call("tools/list", None)]);
        // Escapes are decoded (an escaped name is the same name).
        let req = body(r#"{"method":"tools\/call","params":{"name":"delete\u005frepo"}}"#);
        assert_eq!(req.calls, vec![call("tools/call", Some("delete_repo"))]);
    }

    #[test]
    fn batches_list_every_call_and_responses_are_undetermined() {
        let req = body(
            r#"[{"method":"tools/list","id":1},{"method":"prompts/get","params":{"name":"p"}},
                {"id":7,"result":{}}]"#,
        );
        assert_eq!(
            req.calls,
            vec![call("tools/list", None), call("prompts/get", Some("p"))]
        );
        assert!(req.undetermined);
        assert!(body("[]").undetermined);
    }

    #[test]
    fn repeated_keys_keep_the_last_like_serde_json_value() {
        let req = body(
            r#"{"method":"tools/list","method":"tools/call","params":{"name":"a","name":"b"}}"#,
        );
        assert_eq!(req.calls, vec![call("tools/call", Some("b"))]);
    }

    #[test]
    fn garbage_is_undetermined() {
        for bad in [
            "",
            "not json",
            "{\"method\":1}",
            "{\"method\":\"tools/call\"} trailing",
            "\"tools/call\"",
            "[1,2]",
            "{\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}",
        ] {
            let req = body(bad);
            assert!(req.undetermined && req.calls.is_empty(), "{bad:?}");
        }
        // A non-string name targets nothing; the method still counts.
        let req = body(r#"{"method":"tools/call","params":{"name":{"x":1}}}"#);
        assert_eq!(req.calls, vec![call("tools/call", None)]);
    }

    #[test]
    fn headers_must_agree_with_the_body() {
        let json = r#"{"method":"tools/call","params":{"name":"delete_repo"}}"#;
        let ok = headers("tools/call", Some("delete_repo"));
        let req = classify(Some(&ok), Body::Complete(json.as_bytes())).unwrap();
        assert_eq!(req.calls, vec![call("tools/call", Some("delete_repo"))]);
        for lie in [
            headers("tools/call", Some("echo")),
            headers("tools/list", None),
            headers("tools/call", None),
        ] {
            assert!(
                classify(Some(&lie), Body::Complete(json.as_bytes())).is_err(),
                "{lie:?}"
            );
        }
        let batch = r#"[{"method":"tools/list"},{"method":"tools/list"}]"#;
        assert!(
            classify(
                Some(&headers("tools/list", None)),
                Body::Complete(batch.as_bytes())
            )
            .is_err()
        );
        // Mcp-Name on a method without a name is not compared.
        let list = r#"{"method":"tools/list"}"#;
        assert!(
            classify(
                Some(&headers("tools/list", Some("x"))),
                Body::Complete(list.as_bytes())
            )
            .is_ok()
        );
    }

    #[test]
    fn headers_count_when_the_body_says_nothing() {
        let claimed = headers("tools/call", Some("delete_repo"));
        let req = classify(Some(&claimed), Body::Complete(b"garbage")).unwrap();
        assert_eq!(req.calls, vec![call("tools/call", Some("delete_repo"))]);
        assert!(req.undetermined);
        let req = classify(Some(&claimed), Body::Unreadable).unwrap();
        assert!(req.unreadable);
        assert_eq!(req.calls.len(), 1);
    }

    #[test]
    fn unreadable_and_absent_bodies() {
        let req = classify(None, Body::Unreadable).unwrap();
        assert!(req.unreadable && req.calls.is_empty());
        let req = classify(None, Body::Absent).unwrap();
        assert!(req.undetermined && !req.unreadable);
    }

    #[test]
    fn header_values() {
        assert_eq!(read_headers(&[], &[]), Ok(None));
        assert!(read_headers(&[], &[b"x"]).is_err());
        assert!(read_headers(&[b"a", b"b"], &[]).is_err());
        assert!(read_headers(&[b""], &[]).is_err());
        assert!(read_headers(&[b"tools/call"], &[b"caf\xc3\xa9"]).is_err());
        // "café" in the base64 sentinel, with and without padding.
        for encoded in [&b"=?base64?Y2Fmw6k=?="[..], b"=?base64?Y2Fmw6k?="] {
            assert_eq!(
                read_headers(&[b"tools/call"], &[encoded])
                    .unwrap()
                    .unwrap()
                    .name
                    .as_deref(),
                Some("café")
            );
        }
        assert!(read_headers(&[b"tools/call"], &[b"=?base64?!!?="]).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn classification_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let req = classify(None, Body::Complete(&bytes)).unwrap();
            prop_assert!(req.undetermined || !req.calls.is_empty());
        }
    }
}
