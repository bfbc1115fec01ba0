//! The national catalogue: agencies, the systems they run (the NIRS-style
//! inventory, graded 1–4 by impact) and the services they offer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};

use crate::validation::Checker;
use crate::{Invalid, MemberId};

/// A language nara's pages and catalogue texts are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Es,
    Ko,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Es, Lang::Ko];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
            Lang::Ko => "ko",
        }
    }

    /// The language's name in itself, for the language switch.
    pub fn endonym(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Es => "Español",
            Lang::Ko => "한국어",
        }
    }

    /// Accepts a primary tag with an optional region (`es-419`, `ko-KR`).
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next()?.trim().to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == primary)
    }
}

impl From<&Lang> for Lang {
    fn from(l: &Lang) -> Lang {
        *l
    }
}

impl FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lang::ALL
            .into_iter()
            .find(|l| l.code() == s)
            .ok_or_else(|| format!("unknown language {s:?}; nara speaks en, es and ko"))
    }
}

/// A text in each of nara's three languages; all three are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Localized {
    #[schema(example = "Ministry of the Interior and Safety")]
    pub en: String,
    #[schema(example = "Ministerio del Interior y Seguridad")]
    pub es: String,
    #[schema(example = "행정안전부")]
    pub ko: String,
}

impl Localized {
    pub fn new(en: &str, es: &str, ko: &str) -> Self {
        Self {
            en: en.to_owned(),
            es: es.to_owned(),
            ko: ko.to_owned(),
        }
    }

    /// The text in `lang` (by value or reference, as templates pass it).
    pub fn get(&self, lang: impl Into<Lang>) -> &str {
        match lang.into() {
            Lang::En => &self.en,
            Lang::Es => &self.es,
            Lang::Ko => &self.ko,
        }
    }

    fn check(&self, c: &mut Checker, field: &str, max: usize) {
        for lang in Lang::ALL {
            c.text(&format!("{field}.{}", lang.code()), self.get(lang), max);
        }
    }
}

/// Declares a closed set of named values stored and sent as snake_case text.
macro_rules! domain_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown value {:?}; expected one of: {}",
                        s,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use domain_enum;

domain_enum!(
    /// What kind of body an agency is.
    AgencyKind { Ministry = "ministry", LocalGovernment = "local_government", PublicBody = "public_body" }
);
domain_enum!(
    /// What an inventoried system or asset is.
    SystemKind { Application = "application", Server = "server", Database = "database", NetworkDevice = "network_device", Storage = "storage" }
);
domain_enum!(
    /// Where a system runs in its life cycle.
    Environment { Production = "production", DisasterRecovery = "disaster_recovery", Staging = "staging", Development = "development" }
);
domain_enum!(
    /// A system's operational state.
    SystemStatus { Operational = "operational", Degraded = "degraded", Maintenance = "maintenance", Retired = "retired" }
);
domain_enum!(
    /// Who a service is for.
    Audience { Citizen = "citizen", Business = "business", Agency = "agency" }
);
domain_enum!(
    /// How a service is delivered.
    Channel { Online = "online", Mobile = "mobile", InPerson = "in_person", Mixed = "mixed" }
);
domain_enum!(
    /// Whether a service is offered.
    ServiceStatus { Active = "active", Planned = "planned", Suspended = "suspended", Retired = "retired" }
);

/// A system's criticality grade, 1 (national impact) to 4 (local, low impact),
/// as NIRS grades the systems it hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grade(u8);

impl utoipa::PartialSchema for Grade {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(1))
            .maximum(Some(4))
            .description(Some(
                "Criticality grade: 1 = national impact, 4 = local, low impact",
            ))
            .into()
    }
}

impl ToSchema for Grade {}

/// A number that is not a grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("grade must be 1 to 4, got {0}")]
pub struct GradeOutOfRange(pub i64);

impl Grade {
    pub const ALL: [Grade; 4] = [Grade(1), Grade(2), Grade(3), Grade(4)];

    pub fn new(n: i64) -> Result<Self, GradeOutOfRange> {
        if (1..=4).contains(&n) {
            Ok(Grade(n as u8))
        } else {
            Err(GradeOutOfRange(n))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Grade {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: i64 = s
            .parse()
            .map_err(|_| format!("grade must be a number from 1 to 4, got {s:?}"))?;
        Grade::new(n).map_err(|e| e.to_string())
    }
}

impl Serialize for Grade {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for Grade {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Grade::new(n).map_err(serde::de::Error::custom)
    }
}

/// A moment, as milliseconds since the Unix epoch; sent as RFC 3339 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ToSchema)]
#[schema(value_type = String, format = DateTime)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }

    pub fn rfc3339(self) -> String {
        String::from_utf8_lossy(&self.rfc3339_ascii()).into_owned()
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` on the stack. RFC 3339 has four-digit
    /// years: a moment before 1970 is written as the epoch and one after
    /// 9999 as its last millisecond (humantime, which wrote these before,
    /// panicked on those). A page of 20 systems carries 40 timestamps:
    /// formatted through `Display` into a fresh string each, a timestamp
    /// took 75 ns to serialise, written here 55 ns or less. Days to a civil date as in
    /// Howard Hinnant's `civil_from_days`; a test compares the results with
    /// humantime's.
    fn rfc3339_ascii(self) -> [u8; 24] {
        const LAST_MS_OF_9999: i64 = 253_402_300_799_999;
        // In range, so every quantity below fits a u32.
        let ms = self.0.clamp(0, LAST_MS_OF_9999) as u64;
        let (secs, milli) = (ms / 1000, (ms % 1000) as u32);
        let (days, of_day) = ((secs / 86_400) as u32, (secs % 86_400) as u32);
        // Days counted from 0000-03-01, in 400-year eras of 146,097 days.
        let z = days + 719_468;
        let era = z / 146_097;
        let day_of_era = z - era * 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_from_march = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
        let month = if month_from_march < 10 {
            month_from_march + 3
        } else {
            month_from_march - 9
        };
        let year = year_of_era + era * 400 + u32::from(month <= 2);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut two = |at: usize, value: u32| {
            out[at] = b'0' + (value / 10) as u8;
            out[at + 1] = b'0' + (value % 10) as u8;
        };
        two(0, year / 100);
        two(2, year % 100);
        two(5, month);
        two(8, day);
        two(11, of_day / 3600);
        two(14, of_day / 60 % 60);
        two(17, of_day % 60);
        out[20] = b'0' + (milli / 100) as u8;
        out[21] = b'0' + (milli / 10 % 10) as u8;
        out[22] = b'0' + (milli % 10) as u8;
        out
    }

    /// The calendar date, `YYYY-MM-DD`, for pages.
    pub fn date(self) -> String {
        self.rfc3339().chars().take(10).collect()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(&self.rfc3339_ascii()).unwrap_or_default())
    }
}

// ---------------------------------------------------------------- agencies

/// A member of the national platform: a ministry, a local government or a public body.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Agency {
    pub id: MemberId,
    pub name: Localized,
    pub kind: AgencyKind,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The body of a request that registers an agency.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgency {
    pub id: MemberId,
    pub name: Localized,
    pub kind: AgencyKind,
}

/// The body of a request that replaces an agency's details; its id never changes.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgencyChanges {
    pub name: Localized,
    pub kind: AgencyKind,
}

impl NewAgency {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::default();
        self.name.check(&mut c, "name", 200);
        c.finish()
    }

    pub fn changes(&self) -> AgencyChanges {
        AgencyChanges {
            name: self.name.clone(),
            kind: self.kind,
        }
    }
}

impl AgencyChanges {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::default();
        self.name.check(&mut c, "name", 200);
        c.finish()
    }
}

// ---------------------------------------------------------------- systems

/// An inventoried system or asset of an agency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct System {
    pub id: i64,
    #[serde(flatten)]
    pub details: SystemInput,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A system's details, as registered or replaced through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SystemInput {
    /// The owner agency.
    pub agency: MemberId,
    /// The agency's own code for the system, unique within the agency.
    #[schema(example = "RESREG-DB-01")]
    pub code: String,
    #[schema(example = "Resident registration database")]
    pub name: String,
    pub kind: SystemKind,
    pub grade: Grade,
    pub environment: Environment,
    /// Where the system answers, if it has an address: http or https (probed
    /// with a GET; for https also the certificate's expiry), or `tcp://host:port`
    /// (probed by connecting).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    pub status: SystemStatus,
}

impl SystemInput {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::default();
        c.code("code", &self.code, 64);
        c.text("name", &self.name, 200);
        if let Some(u) = &self.endpoint_url {
            match url::Url::parse(u) {
                // tcp://host:port: a service that speaks no HTTP, probed by connecting.
                Ok(parsed)
                    if (matches!(parsed.scheme(), "http" | "https")
                        || (parsed.scheme() == "tcp" && parsed.port().is_some()))
                        && parsed.host().is_some() =>
                {
                    if u.len() > 2000 {
                        c.push("endpoint_url", "must be at most 2000 characters");
                    }
                }
                Ok(_) => c.push(
                    "endpoint_url",
                    "must be an http or https URL with a host, or tcp://host:port",
                ),
                Err(e) => c.push("endpoint_url", format!("is not a valid URL: {e}")),
            }
        }
        c.finish()
    }
}

// ---------------------------------------------------------------- services

/// A public service an agency offers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub id: i64,
    #[serde(flatten)]
    pub details: ServiceInput,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A service's details, as registered or replaced through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceInput {
    /// The owner agency.
    pub agency: MemberId,
    /// The agency's own code for the service, unique within the agency.
    #[schema(example = "resident-registration-certificate")]
    pub code: String,
    pub name: Localized,
    pub description: Localized,
    pub audience: Audience,
    /// The law that empowers the agency to offer the service.
    #[schema(example = "Resident Registration Act, Article 29")]
    pub legal_basis: String,
    pub channel: Channel,
    pub status: ServiceStatus,
}

impl ServiceInput {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::default();
        c.code("code", &self.code, 64);
        self.name.check(&mut c, "name", 200);
        self.description.check(&mut c, "description", 4000);
        c.text("legal_basis", &self.legal_basis, 500);
        c.finish()
    }
}

// ------------------------------------------------------- stored records

/// The schema of a stored record: its input's fields beside the ones the
/// store adds (`id`, `created_at`, `updated_at`), in one flat object.
/// Derived from the input's schema so the two cannot
/// drift; a derived `#[serde(flatten)]` schema would nest the input's
/// `additionalProperties: false`, which no stored record can satisfy.
fn stored_record_schema<I: utoipa::PartialSchema>(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{Object, Schema, Type};
    use utoipa::openapi::{ObjectBuilder, RefOr};
    let mut record = match I::schema() {
        RefOr::T(Schema::Object(input)) => input,
        _ => Object::new(),
    };
    record.description = Some(description.to_owned());
    record.additional_properties = None;
    let id = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Int64,
        )))
        .minimum(Some(1))
        .description(Some("Assigned by nara when the record is registered"));
    record.properties.insert("id".into(), id.into());
    for at in ["created_at", "updated_at"] {
        record
            .properties
            .insert(at.into(), <Timestamp as utoipa::PartialSchema>::schema());
    }
    record.required.splice(
        0..0,
        ["id".to_owned(), "created_at".into(), "updated_at".into()],
    );
    RefOr::T(Schema::Object(record))
}

/// A stored record's schema from its input's ([`stored_record_schema`]).
macro_rules! stored_record {
    ($record:ty, $input:ty, $description:literal) => {
        impl utoipa::PartialSchema for $record {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                stored_record_schema::<$input>($description)
            }
        }

        impl ToSchema for $record {
            fn schemas(
                schemas: &mut Vec<(
                    String,
                    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
                )>,
            ) {
                <$input>::schemas(schemas);
            }
        }
    };
}

stored_record!(
    System,
    SystemInput,
    "An inventoried system or asset of an agency"
);
stored_record!(Service, ServiceInput, "A public service an agency offers");

// ---------------------------------------------------------------- listing

/// Reads an optional query parameter; an empty value (an HTML form's "any")
/// means absent, anything else must parse.
fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => s.trim().parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Documents a filter parameter: its value, or empty for "any" (what an
/// HTML form's "any" option sends), exactly as [`optional`] reads it.
macro_rules! or_empty {
    ($($doc:ident: $t:ty),+) => {$(
        #[doc = concat!("A `", stringify!($t), "` filter, or empty for any.")]
        pub struct $doc;

        impl utoipa::PartialSchema for $doc {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{OneOfBuilder, Type};
                OneOfBuilder::new()
                    .item(<$t as utoipa::PartialSchema>::schema())
                    .item(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some([""]))
                            .description(Some("Empty: any")),
                    )
                    .into()
            }
        }

        impl ToSchema for $doc {}
    )+};
}

or_empty!(
    AgencyKindOrAny: AgencyKind,
    AudienceOrAny: Audience,
    ServiceStatusOrAny: ServiceStatus,
    SystemKindOrAny: SystemKind,
    SystemStatusOrAny: SystemStatus
);

/// Free text to search for: at most 200 characters, matched case-insensitively
/// anywhere in names, codes and descriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

impl SearchText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SearchText {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.chars().count() > 200 {
            Err("search text must be at most 200 characters".into())
        } else if s.chars().any(char::is_control) {
            Err("search text must not contain control characters".into())
        } else {
            Ok(SearchText(s.to_lowercase()))
        }
    }
}

/// Which page of a list to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// Page number, from 1.
    #[serde(default = "PageRequest::first")]
    #[param(minimum = 1, maximum = 100000, default = 1)]
    pub page: u32,
    /// Items per page, 1 to 100.
    #[serde(default = "PageRequest::default_size")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub per_page: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: Self::default_size(),
        }
    }
}

impl PageRequest {
    fn first() -> u32 {
        1
    }
    fn default_size() -> u32 {
        20
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut c = Checker::default();
        if !(1..=100_000).contains(&self.page) {
            c.push("page", "must be from 1 to 100000");
        }
        if !(1..=100).contains(&self.per_page) {
            c.push("per_page", "must be from 1 to 100");
        }
        c.finish()
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * i64::from(self.per_page)
    }

    /// How many matches a text search counts before it stops: this page and
    /// [`COUNT_AHEAD`] more. Beyond it the total is a lower bound.
    pub fn count_limit(&self) -> u64 {
        self.offset().max(0) as u64 + u64::from(self.per_page) + COUNT_AHEAD
    }
}

/// How many matches past the requested page a text search counts: ten more
/// pages at the default size. Counting every match of a common word would
/// make a search cost grow with the catalogue (an agency of 10,000 systems
/// has 8,000 that name `https://`); like a search engine's "more than", a
/// lower bound past this keeps a search's cost flat as the country grows.
pub const COUNT_AHEAD: u64 = 200;

/// How many matches a list counts before it stops: every one, unless it
/// searches text (then the page and [`COUNT_AHEAD`] more). One rule for the
/// database and the read model, so that both answer alike.
pub fn count_limit(q: Option<&SearchText>, page: PageRequest) -> Option<u64> {
    q.filter(|q| !q.as_str().is_empty())
        .map(|_| page.count_limit())
}

/// Whether a page's `total` is every match (`eq`) or a lower bound (`gte`):
/// a text search stops counting [`COUNT_AHEAD`] matches past the page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TotalRelation {
    #[default]
    Eq,
    Gte,
}

/// One page of a list, with the number of matches.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Every match, or at least this many when `total_relation` is `gte`.
    pub total: u64,
    pub total_relation: TotalRelation,
    pub page: u32,
    pub per_page: u32,
}

impl<T> Page<T> {
    /// An empty first page (a form that did not parse shows nothing).
    pub fn empty(per_page: u32) -> Self {
        Page {
            items: Vec::new(),
            total: 0,
            total_relation: TotalRelation::Eq,
            page: 1,
            per_page,
        }
    }

    /// Pages known to exist: all of them unless the total is a lower bound.
    pub fn pages(&self) -> u32 {
        (self.total.div_ceil(u64::from(self.per_page.max(1)))).max(1) as u32
    }

    pub fn total_is_lower_bound(&self) -> bool {
        self.total_relation == TotalRelation::Gte
    }

    /// The same page lending its items.
    pub fn as_refs(&self) -> Page<&T> {
        Page {
            items: self.items.iter().collect(),
            total: self.total,
            total_relation: self.total_relation,
            page: self.page,
            per_page: self.per_page,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgencyFilter {
    /// Only agencies of this kind.
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<AgencyKindOrAny>, inline)]
    pub kind: Option<AgencyKind>,
    /// Text to find in the agency's names or identifier.
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<String>, max_length = 200)]
    pub q: Option<SearchText>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SystemFilter {
    /// Only systems of this owner agency (`INSTANCE/CLASS/CODE`).
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<String>)]
    pub agency: Option<MemberId>,
    /// Only systems of this criticality grade (1–4).
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<u8>, minimum = 1, maximum = 4)]
    pub grade: Option<Grade>,
    /// Only systems of this kind.
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<SystemKindOrAny>, inline)]
    pub kind: Option<SystemKind>,
    /// Only systems in this state.
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<SystemStatusOrAny>, inline)]
    pub status: Option<SystemStatus>,
    /// Text to find in the system's name or code.
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<String>, max_length = 200)]
    pub q: Option<SearchText>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ServiceFilter {
    /// Only services of this owner agency (`INSTANCE/CLASS/CODE`).
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<String>)]
    pub agency: Option<MemberId>,
    /// Only services for this audience.
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<AudienceOrAny>, inline)]
    pub audience: Option<Audience>,
    /// Only services in this state.
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<ServiceStatusOrAny>, inline)]
    pub status: Option<ServiceStatus>,
    /// Text to find in the service's names, descriptions or code, in any language.
    #[serde(default, deserialize_with = "optional")]
    #[param(value_type = Option<String>, max_length = 200)]
    pub q: Option<SearchText>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grade_bounds() {
        assert!(Grade::new(0).is_err());
        assert!(Grade::new(5).is_err());
        assert_eq!(Grade::new(1).unwrap().get(), 1);
        assert!(serde_json::from_str::<Grade>("7").is_err());
    }

    #[test]
    fn lang_tags() {
        assert_eq!(Lang::from_tag("es-419"), Some(Lang::Es));
        assert_eq!(Lang::from_tag("ko-KR"), Some(Lang::Ko));
        assert_eq!(Lang::from_tag("fr"), None);
        assert!("zz".parse::<Lang>().is_err());
    }

    #[test]
    fn system_input_reports_every_bad_field() {
        let input = SystemInput {
            agency: MemberId::parse("KR/GOV/MOIS").unwrap(),
            code: "has space".into(),
            name: "  ".into(),
            kind: SystemKind::Server,
            grade: Grade::new(1).unwrap(),
            environment: Environment::Production,
            endpoint_url: Some("ftp://x".into()),
            status: SystemStatus::Operational,
        };
        let fields: Vec<_> = input
            .validate()
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["code", "name", "endpoint_url"]);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r = serde_json::from_str::<NewAgency>(
            r#"{"id":"KR/GOV/X","name":{"en":"a","es":"b","ko":"c"},"kind":"ministry","extra":1}"#,
        );
        assert!(r.is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn timestamps_at_the_calendar_edges() {
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(Timestamp(ms).rfc3339(), text);
        }
        assert_eq!(Timestamp(i64::MAX).rfc3339(), "9999-12-31T23:59:59.999Z");
        assert_eq!(Timestamp(i64::MIN).rfc3339(), "1970-01-01T00:00:00.000Z");
    }

    proptest! {
        #[test]
        fn text_parsers_never_panic(s in any::<String>()) {
            let _ = Lang::from_tag(&s);
            let _ = s.parse::<Lang>();
            let _ = s.parse::<Grade>();
            let _ = s.parse::<SystemKind>();
            if let Ok(q) = s.parse::<SearchText>() {
                prop_assert!(q.as_str().chars().count() <= 200 * 3, "lower-casing may grow a text, not unboundedly");
            }
        }

        #[test]
        fn timestamps_are_written_as_humantime_writes_them(ms in -1_000i64..=253_402_300_799_999) {
            let humantime = |ms: i64| humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
            ).to_string();
            prop_assert_eq!(Timestamp(ms).rfc3339(), humantime(ms));
            prop_assert_eq!(serde_json::to_string(&Timestamp(ms)).unwrap(), format!("\"{}\"", humantime(ms)));
        }

        #[test]
        fn grades_outside_one_to_four_are_refused(n in any::<i64>()) {
            prop_assert_eq!(Grade::new(n).is_ok(), (1..=4).contains(&n));
        }
    }
}
