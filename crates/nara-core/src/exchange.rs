//! The exchange between agencies, as the X-Road Message Protocol for REST
//! (r1) names it: clients (`INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`), services
//! (`INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`), the request URI
//! `/r1/{serviceId}[/path][?query]`, the request hash, the protocol's error
//! types, and nara's additions: the purposes an exchange may state.
//!
//! Parsing is strict (PR-REST §4.2: "incoming request URIs MUST be strictly
//! validated"): each identifier part is percent-decoded on its own and must
//! be 1–64 of `A–Z a–z 0–9 - _ .` (not dots alone); the path after the
//! service may not hold `.`/`..` segments, encoded slashes, backslashes or
//! control characters, in plain or encoded form; a query may not repeat a
//! parameter name (HTTP parameter pollution, which providers resolve
//! differently); the whole URI is at most 2,000 characters.

use std::fmt;

use base64::Engine;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};
use utoipa::ToSchema;

use crate::MemberId;
use crate::catalogue::domain_enum;

/// PR-REST §4.2: clients commonly stop at 2,000 characters; so does nara.
pub const MAX_URI: usize = 2_000;
/// The metaservices a provider subsystem answers (PR-MREST §4–5).
pub const METASERVICES: &[&str] = &["listMethods", "allowedMethods", "getOpenAPI"];

/// A protocol error, with the X-Road type the response names in its body and
/// `X-Road-Error` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub message: String,
}

/// The error types nara's gateway answers with. `Client.*` are the
/// consumer's mistakes (HTTP 400, PR-REST §4.6 category 3); `Server.*` are
/// raised by a gateway (HTTP 500, categories 2 and 4), the provider side's
/// named `Server.ServerProxy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    BadRequest,
    InvalidSignature,
    InvalidClientIdentifier,
    DuplicateMessageId,
    UnknownService,
    AccessDenied,
    PurposeRequired,
    ConsentRequired,
    ServiceFailed,
    NetworkError,
    DatabaseError,
    OutdatedGlobalConf,
}

impl FaultKind {
    pub fn type_name(self) -> &'static str {
        match self {
            FaultKind::BadRequest => "Client.BadRequest",
            FaultKind::InvalidSignature => "Client.InvalidSignatureValue",
            FaultKind::InvalidClientIdentifier => "Client.InvalidClientIdentifier",
            FaultKind::DuplicateMessageId => "Client.DuplicateMessageId",
            FaultKind::UnknownService => "Server.ServerProxy.UnknownService",
            FaultKind::AccessDenied => "Server.ServerProxy.AccessDenied",
            FaultKind::PurposeRequired => "Server.ServerProxy.PurposeNotAllowed",
            FaultKind::ConsentRequired => "Server.ServerProxy.ConsentRequired",
            FaultKind::ServiceFailed => "Server.ServerProxy.ServiceFailed",
            FaultKind::NetworkError => "Server.ServerProxy.NetworkError",
            FaultKind::DatabaseError => "Server.ServerProxy.DatabaseError",
            FaultKind::OutdatedGlobalConf => "Server.ClientProxy.OutdatedGlobalConf",
        }
    }

    /// 400 for the consumer's mistakes, 500 for the gateway's (PR-REST §4.6).
    pub fn status(self) -> u16 {
        if self.type_name().starts_with("Client.") {
            400
        } else {
            500
        }
    }

    /// Whether the refusal is one a security analyst should see.
    pub fn is_security_event(self) -> bool {
        !matches!(
            self,
            FaultKind::ServiceFailed
                | FaultKind::NetworkError
                | FaultKind::DatabaseError
                | FaultKind::OutdatedGlobalConf
        )
    }
}

impl Fault {
    pub fn new(kind: FaultKind, message: impl Into<String>) -> Fault {
        Fault {
            kind,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Fault {
        Fault::new(FaultKind::BadRequest, message)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.type_name(), self.message)
    }
}

/// One identifier part: 1–64 of `A–Z a–z 0–9 - _ .`, not dots alone (so
/// never `.` or `..`).
pub fn valid_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 64
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !part.bytes().all(|b| b == b'.')
}

/// Percent-decodes one part and checks it (an encoded `/` stays refused).
fn decode_part(raw: &str, what: &str) -> Result<String, Fault> {
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Fault::bad(format!("the {what} is not UTF-8 once percent-decoded")))?;
    if !valid_part(&decoded) {
        return Err(Fault::bad(format!(
            "the {what} must be 1 to 64 ASCII letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(decoded.into_owned())
}

/// A consumer: a member, optionally one of its subsystems.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    pub member: MemberId,
    pub subsystem: Option<String>,
}

impl ClientId {
    /// Parses the `X-Road-Client` header: `INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`,
    /// each part percent-encoded on its own.
    pub fn parse(header: &str) -> Result<ClientId, Fault> {
        let parts: Vec<&str> = header.trim().split('/').collect();
        if !(3..=4).contains(&parts.len()) {
            return Err(Fault::new(
                FaultKind::InvalidClientIdentifier,
                "X-Road-Client must be INSTANCE/CLASS/MEMBER[/SUBSYSTEM]",
            ));
        }
        let mut decoded = Vec::new();
        for p in &parts {
            decoded.push(
                decode_part(p, "client identifier part")
                    .map_err(|f| Fault::new(FaultKind::InvalidClientIdentifier, f.message))?,
            );
        }
        let member = MemberId::parse(&decoded[..3].join("/"))
            .map_err(|_| Fault::new(FaultKind::InvalidClientIdentifier, "bad member"))?;
        Ok(ClientId {
            member,
            subsystem: decoded.get(3).cloned(),
        })
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subsystem {
            Some(s) => write!(f, "{}/{s}", self.member),
            None => write!(f, "{}", self.member),
        }
    }
}

/// A service: `INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId {
    pub member: MemberId,
    pub subsystem: String,
    pub code: String,
}

impl ServiceId {
    pub fn new(member: MemberId, subsystem: &str, code: &str) -> Result<ServiceId, Fault> {
        if !valid_part(subsystem) || !valid_part(code) {
            return Err(Fault::bad(
                "subsystem and service codes must be identifiers",
            ));
        }
        Ok(ServiceId {
            member,
            subsystem: subsystem.to_owned(),
            code: code.to_owned(),
        })
    }

    /// Parses the stored (unencoded) form.
    pub fn parse(text: &str) -> Result<ServiceId, Fault> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() != 5 || !parts.iter().all(|p| valid_part(p)) {
            return Err(Fault::bad(
                "a service is INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE",
            ));
        }
        let member = MemberId::parse(&parts[..3].join("/")).map_err(|_| Fault::bad("member"))?;
        ServiceId::new(member, parts[3], parts[4])
    }

    /// The provider subsystem, as a client identifier.
    pub fn provider(&self) -> ClientId {
        ClientId {
            member: self.member.clone(),
            subsystem: Some(self.subsystem.clone()),
        }
    }

    pub fn is_metaservice(&self) -> bool {
        METASERVICES.contains(&self.code.as_str())
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.member, self.subsystem, self.code)
    }
}

/// What an r1 request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: ServiceId,
    /// The path after the service, as sent (still percent-encoded), `""` or
    /// starting with `/`.
    pub path: String,
    /// The query as sent, without `?`.
    pub query: Option<String>,
}

impl Target {
    /// Parses `/r1/INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE[/path]` and the query.
    pub fn parse(raw_path: &str, query: Option<&str>) -> Result<Target, Fault> {
        if raw_path.len() + query.map_or(0, |q| q.len() + 1) > MAX_URI {
            return Err(Fault::bad(format!(
                "the request URI is longer than {MAX_URI} characters; send large data in the body"
            )));
        }
        let rest = raw_path
            .strip_prefix("/r1/")
            .ok_or_else(|| Fault::bad("the protocol version must be r1: /r1/{serviceId}"))?;
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.len() < 5 {
            return Err(Fault::bad(
                "the service must be /r1/INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICE",
            ));
        }
        let names = ["instance", "member class", "member code", "subsystem code"];
        let mut parts = Vec::new();
        for (name, raw) in names.iter().zip(&segments[..4]) {
            parts.push(decode_part(raw, name)?);
        }
        let code = decode_part(segments[4], "service code")?;
        let member = MemberId::parse(&parts[..3].join("/")).map_err(|_| Fault::bad("member"))?;
        let service = ServiceId::new(member, &parts[3], &code)?;
        let mut path = String::new();
        for raw in &segments[5..] {
            check_path_segment(raw)?;
            path.push('/');
            path.push_str(raw);
        }
        if let Some(q) = query {
            check_query(q)?;
        }
        Ok(Target {
            service,
            path,
            query: query.map(str::to_owned),
        })
    }

    /// Path and query as the provider sees them.
    pub fn path_and_query(&self) -> String {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        match &self.query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        }
    }
}

/// Whether every `%` begins a two-hex-digit escape (RFC 3986 §2.1): a
/// lenient decoder keeps `%` or `%G1` as they are, and a provider that is
/// strict would read something else than the gateway checked.
fn well_encoded(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.iter().enumerate().all(|(i, c)| {
        *c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

fn check_path_segment(raw: &str) -> Result<(), Fault> {
    if !well_encoded(raw) {
        return Err(Fault::bad("the path has a malformed percent-encoding"));
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Fault::bad("the path is not UTF-8 once percent-decoded"))?;
    // Decode twice: `%252e%252e` is `..` to a provider that decodes again.
    let twice = percent_decode_str(&decoded)
        .decode_utf8_lossy()
        .into_owned();
    for d in [decoded.as_ref(), twice.as_str()] {
        if d == "." || d == ".." {
            return Err(Fault::bad("the path may not contain '.' or '..' segments"));
        }
        if d.contains(['/', '\\']) || d.chars().any(char::is_control) {
            return Err(Fault::bad(
                "a path segment may not contain an encoded '/', a '\\' or control characters",
            ));
        }
    }
    if raw.is_empty() {
        return Err(Fault::bad("the path may not contain empty segments ('//')"));
    }
    Ok(())
}

fn check_query(query: &str) -> Result<(), Fault> {
    if !well_encoded(query) {
        return Err(Fault::bad("the query has a malformed percent-encoding"));
    }
    let mut seen = std::collections::HashSet::new();
    for (name, value) in form_pairs(query)? {
        if value.chars().any(char::is_control) || name.chars().any(char::is_control) {
            return Err(Fault::bad("the query may not contain control characters"));
        }
        if !seen.insert(name.clone()) {
            return Err(Fault::bad(format!(
                "the query repeats the parameter {name:?} (HTTP parameter pollution)"
            )));
        }
    }
    Ok(())
}

/// The query's name/value pairs, percent-decoded.
pub fn form_pairs(query: &str) -> Result<Vec<(String, String)>, Fault> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| Fault::bad("the query is not UTF-8 once percent-decoded"))
        };
        out.push((dec(n)?, dec(v)?));
    }
    Ok(out)
}

/// `X-Road-Request-Hash` (PR-REST §4.3): base64 of
/// `SHA512(SHA512(headers) + SHA512(body))`, or of `SHA512(headers)` when
/// there is no body. "headers" is the request as the provider receives it:
/// the request line `METHOD path?query`, then each X-Road and forwarded header as
/// `name: value` (names lower-case, sorted), lines ended by CRLF.
pub fn request_hash(head: &str, body: &[u8]) -> String {
    let head = Sha512::digest(head.as_bytes());
    let out = if body.is_empty() {
        head.to_vec()
    } else {
        let mut h = Sha512::new();
        h.update(head);
        h.update(Sha512::digest(body));
        h.finalize().to_vec()
    };
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// The canonical head [`request_hash`] covers.
pub fn request_head(method: &str, path_and_query: &str, headers: &[(String, String)]) -> String {
    let mut sorted: Vec<(String, &str)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_str()))
        .collect();
    sorted.sort();
    let mut out = format!("{method} {path_and_query}\r\n");
    for (n, v) in sorted {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out
}

/// `X-Road-Id`, `X-Road-UserId` and `X-Road-Issue` values: 1–200 visible
/// ASCII characters.
pub fn valid_header_text(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 200
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

domain_enum!(
    /// Why an agency asks for data (`Nara-Purpose`). Every exchange of
    /// personal data states one, and the provider's service lists which it
    /// accepts; the citizen sees it in their data-access history.
    Purpose {
        CertificateIssuance = "certificate-issuance",
        BenefitEligibility = "benefit-eligibility",
        SchoolEnrolment = "school-enrolment",
        BusinessLicensing = "business-licensing",
        TaxAdministration = "tax-administration",
        VehicleAdministration = "vehicle-administration",
        EmploymentSupport = "employment-support",
        PublicSafety = "public-safety",
        Statistics = "statistics",
    }
);

impl Purpose {
    /// A plain-language description, shown where a citizen grants consent.
    pub fn describe(self) -> &'static str {
        match self {
            Purpose::CertificateIssuance => "issuing a certificate you asked for",
            Purpose::BenefitEligibility => "deciding whether you can receive a benefit",
            Purpose::SchoolEnrolment => "enrolling a child in school or after-school care",
            Purpose::BusinessLicensing => "registering or licensing a business",
            Purpose::TaxAdministration => "assessing or collecting tax",
            Purpose::VehicleAdministration => "registering or inspecting a vehicle",
            Purpose::EmploymentSupport => "employment and job-seeker support",
            Purpose::PublicSafety => "protecting public safety",
            Purpose::Statistics => "official statistics (no decision about you)",
        }
    }
}

/// A legal basis an agency names instead of consent (`Nara-Legal-Basis`),
/// e.g. `Electronic Government Act art. 36`: 3–120 letters, digits, spaces
/// and `.,-()§`.
pub fn valid_legal_basis(text: &str) -> bool {
    (3..=120).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " .,-()§/".contains(c))
}

/// A provider system's base URL, as registered: `http` or `https`, a host,
/// no credentials, query or fragment (the request's path is appended to it,
/// nothing else of the request ever shapes it).
pub fn check_endpoint_url(text: &str) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(text.trim()).map_err(|_| "not a URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the scheme must be http or https");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL needs a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL may not carry credentials");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL may not have a query or fragment");
    }
    Ok(url)
}

/// An OpenAPI 3 description: a JSON object with `openapi: 3.x` and `paths`.
pub fn check_openapi(text: &str) -> Result<serde_json::Value, &'static str> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "the OpenAPI description is not JSON")?;
    let version = doc.get("openapi").and_then(|v| v.as_str()).unwrap_or("");
    if !version.starts_with("3.") {
        return Err("the description must be OpenAPI 3 (\"openapi\": \"3.x\")");
    }
    if !doc.get("paths").is_some_and(|p| p.is_object()) {
        return Err("the OpenAPI description has no paths");
    }
    Ok(doc)
}

/// Why a registry's field list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldListError {
    #[error("{0:?}: write a field as `name type`")]
    NotNameAndType(String),
    #[error("{0:?}: field names are letters, digits and '_'")]
    BadName(String),
    #[error("{0:?}: a type is string, integer, number, boolean, array or object")]
    BadType(String),
    #[error("a registry has 1 to 100 fields")]
    Count,
}

/// A registry field list, one `name type` per line (types of JSON Schema:
/// string, integer, number, boolean, array, object), as a JSON Schema.
pub fn registry_schema(title: &str, lines: &str) -> Result<serde_json::Value, FieldListError> {
    let mut properties = serde_json::Map::new();
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, kind) = line
            .split_once(char::is_whitespace)
            .map(|(n, k)| (n.trim(), k.trim()))
            .ok_or_else(|| FieldListError::NotNameAndType(line.to_owned()))?;
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            return Err(FieldListError::BadName(name.to_owned()));
        }
        if !["string", "integer", "number", "boolean", "array", "object"].contains(&kind) {
            return Err(FieldListError::BadType(kind.to_owned()));
        }
        properties.insert(name.to_owned(), serde_json::json!({ "type": kind }));
    }
    if properties.is_empty() || properties.len() > 100 {
        return Err(FieldListError::Count);
    }
    Ok(serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    }))
}

/// The OpenAPI description of a hosted registry's data service.
pub fn registry_openapi(title: &str, code: &str, schema: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": {"/record": {"get": {
            "operationId": format!("get-{code}"),
            "summary": format!("The {title} record of the person named in Nara-Subject"),
            "parameters": [
                {"name": "Nara-Subject", "in": "header", "required": true, "schema": {"type": "string"}},
                {"name": "Nara-Purpose", "in": "header", "required": true, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "The record", "content": {"application/json": {"schema": schema}}},
                "404": {"description": "No record of this person"},
            },
        }}},
    })
}

/// Whether the record fields a client may see are limited (an access
/// right's minimal-field view): keeps only `fields` of a JSON object, or of
/// every object in an array.
pub fn minimal_view(value: serde_json::Value, fields: &[String]) -> serde_json::Value {
    use serde_json::Value;
    if fields.is_empty() {
        return value;
    }
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| fields.iter().any(|f| f == k))
                .collect(),
        ),
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| minimal_view(v, fields)).collect())
        }
        other => other,
    }
}

/// One data service as the directory lists it (PR-MREST's
/// `xroadRestServiceDetailsType`, serialised as its examples show).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceDetails {
    pub xroad_instance: String,
    pub member_class: String,
    pub member_code: String,
    pub subsystem_code: String,
    pub service_code: String,
    pub service_version: String,
    pub object_type: String,
    pub service_type: String,
    pub endpoint_list: Vec<Endpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Endpoint {
    pub method: String,
    pub path: String,
}

/// Why a record does not follow its registry's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("a record is a JSON object")]
    NotAnObject,
    #[error("the registry's schema declares no properties")]
    NoProperties,
    #[error("{0} is required")]
    Missing(String),
    #[error("{0} is not a field of this registry")]
    Undeclared(String),
    #[error("{field} must be of type {expected}")]
    WrongType { field: String, expected: String },
}

/// Checks a record against a registry's schema: a JSON object whose
/// `required` properties are present, whose properties are all declared
/// (`additionalProperties` is false) and of the declared `type`. This subset
/// of JSON Schema is what registries declare.
pub fn check_record(
    schema: &serde_json::Value,
    record: &serde_json::Value,
) -> Result<(), RecordError> {
    let obj = record.as_object().ok_or(RecordError::NotAnObject)?;
    let props = schema
        .get("properties")
        .and_then(|p| p.as_object())
        .ok_or(RecordError::NoProperties)?;
    for r in schema
        .get("required")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(name) = r.as_str()
            && !obj.contains_key(name)
        {
            return Err(RecordError::Missing(name.to_owned()));
        }
    }
    for (name, value) in obj {
        let declared = props
            .get(name)
            .ok_or_else(|| RecordError::Undeclared(name.clone()))?;
        let expected = declared.get("type").and_then(|t| t.as_str());
        let ok = match expected {
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            _ => true,
        };
        if !ok {
            return Err(RecordError::WrongType {
                field: name.clone(),
                expected: expected.unwrap_or_default().to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn records_follow_the_schema() {
        let schema = serde_json::json!({
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}
        });
        let check = |r| check_record(&schema, &r);
        assert_eq!(check(serde_json::json!({"name": "a", "age": 3})), Ok(()));
        assert_eq!(
            check(serde_json::json!({"age": 3})),
            Err(RecordError::Missing("name".into()))
        );
        assert!(matches!(
            check(serde_json::json!({"name": 1})),
            Err(RecordError::WrongType { .. })
        ));
        assert_eq!(
            check(serde_json::json!({"name": "a", "x": 1})),
            Err(RecordError::Undeclared("x".into()))
        );
        assert_eq!(check(serde_json::json!([1])), Err(RecordError::NotAnObject));
    }
    use super::*;

    #[test]
    fn parses_the_protocol_example() {
        let t = Target::parse(
            "/r1/INSTANCE/CLASS2/MEMBER2/SUBSYSTEM2/BARSERVICE/v1/bar/zyggy",
            Some("quu=1"),
        )
        .unwrap();
        assert_eq!(
            t.service.to_string(),
            "INSTANCE/CLASS2/MEMBER2/SUBSYSTEM2/BARSERVICE"
        );
        assert_eq!(t.path_and_query(), "/v1/bar/zyggy?quu=1");
        let c = ClientId::parse("INSTANCE/CLASS1/MEMBER1/SUBSYSTEM1").unwrap();
        assert_eq!(c.to_string(), "INSTANCE/CLASS1/MEMBER1/SUBSYSTEM1");
        assert!(
            ClientId::parse("INSTANCE/CLASS1/MEMBER1")
                .unwrap()
                .subsystem
                .is_none()
        );
    }

    #[test]
    fn hostile_targets_are_bad_requests() {
        for (path, query) in [
            ("/r2/KR/GOV/MOIS/reg/svc", None),
            ("/r1/KR/GOV/MOIS/reg", None),
            ("/r1/KR%2FGOV%2FMOIS%2Freg%2Fsvc", None),
            ("/r1/KR/GOV/MOIS/reg/svc/../../admin", None),
            ("/r1/KR/GOV/MOIS/reg/svc/%2e%2e/x", None),
            ("/r1/KR/GOV/MOIS/reg/svc/%252e%252e/x", None),
            ("/r1/KR/GOV/MOIS/reg/svc/a%2Fb", None),
            ("/r1/KR/GOV/MOIS/reg/svc/a%5Cb", None),
            ("/r1/KR/GOV/MOIS/reg/svc/a%00b", None),
            ("/r1/KR/GOV/MOIS/reg/svc//x", None),
            ("/r1/KR/GOV/../reg/svc", None),
            ("/r1/KR/GOV/MO%ZZ/reg/svc", None),
            ("/r1/KR/GOV/MOIS/reg/svc", Some("a=1&a=2")),
            ("/r1/KR/GOV/MOIS/reg/svc", Some("a=%0d%0aX")),
            ("/r1/KR/GOV/MOIS/reg/svc", Some("a=%ff")),
            // Review finding 9: malformed percent-encodings.
            ("/r1/KR/GOV/MOIS/reg/svc", Some("%")),
            ("/r1/KR/GOV/MOIS/reg/svc", Some("a=%4")),
            ("/r1/KR/GOV/MOIS/reg/svc", Some("a=%G1")),
            ("/r1/KR/GOV/MOIS/reg/svc/a%", None),
            ("/r1/KR/GOV/MOIS/reg/svc/a%zz", None),
        ] {
            let f = Target::parse(path, query).unwrap_err();
            assert_eq!(f.kind, FaultKind::BadRequest, "{path} {query:?}");
        }
        let long = format!("/r1/KR/GOV/MOIS/reg/svc/{}", "a".repeat(MAX_URI));
        assert!(Target::parse(&long, None).is_err());
        for bad in [
            "",
            "KR/GOV",
            "KR/GOV/MOIS/a/b",
            "KR/GOV/MO IS",
            "KR/GOV/..",
            "KR%2FGOV/X/Y",
        ] {
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_hash_follows_the_formula() {
        let head = request_head(
            "GET",
            "/v1/x",
            &[("X-Road-Client".into(), "A/B/C/D".into())],
        );
        assert_eq!(head, "GET /v1/x\r\nx-road-client: A/B/C/D\r\n");
        let b64 = base64::engine::general_purpose::STANDARD;
        let no_body = request_hash(&head, b"");
        assert_eq!(
            b64.decode(&no_body).unwrap(),
            Sha512::digest(head.as_bytes()).to_vec()
        );
        let mut h = Sha512::new();
        h.update(Sha512::digest(head.as_bytes()));
        h.update(Sha512::digest(b"{}"));
        assert_eq!(
            b64.decode(request_hash(&head, b"{}")).unwrap(),
            h.finalize().to_vec()
        );
    }

    #[test]
    fn endpoints_and_descriptions_are_checked() {
        assert!(check_endpoint_url("https://cases.police.example/api").is_ok());
        for bad in [
            "ftp://x/",
            "http://user:pw@x/",
            "http://x/?a=1",
            "http://x/#f",
            "/relative",
            "http://",
        ] {
            assert!(check_endpoint_url(bad).is_err(), "{bad}");
        }
        assert!(check_openapi(r#"{"openapi":"3.1.0","paths":{}}"#).is_ok());
        assert!(check_openapi(r#"{"swagger":"2.0","paths":{}}"#).is_err());
        assert!(check_openapi("not json").is_err());
        let schema = registry_schema("T", "name string\nage integer\n").unwrap();
        assert_eq!(schema["properties"]["age"]["type"], "integer");
        assert!(registry_schema("T", "name strin").is_err());
        assert!(registry_schema("T", "na-me string").is_err());
        assert!(registry_schema("T", "").is_err());
    }

    #[test]
    fn minimal_view_keeps_named_fields() {
        let v = serde_json::json!({"name": "a", "address": "b", "id": 1});
        assert_eq!(
            minimal_view(v.clone(), &["name".into()]),
            serde_json::json!({"name": "a"})
        );
        assert_eq!(minimal_view(v.clone(), &[]), v);
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(path in "[ -~]{0,120}", query in proptest::option::of("[ -~]{0,60}")) {
            let _ = Target::parse(&path, query.as_deref());
            let _ = ClientId::parse(&path);
        }

        #[test]
        fn valid_targets_round_trip(parts in proptest::collection::vec("[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}", 5),
                                    rest in proptest::collection::vec("[a-z0-9]{1,8}", 0..4)) {
            let path = format!("/r1/{}{}", parts.join("/"), rest.iter().map(|r| format!("/{r}")).collect::<String>());
            let t = Target::parse(&path, None).unwrap();
            proptest::prop_assert_eq!(t.service.to_string(), parts.join("/"));
            proptest::prop_assert_eq!(t.service.code.as_str(), parts[4].as_str());
        }
    }
}
