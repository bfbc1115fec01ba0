//! What a citizen's phishing or smishing report points at — web addresses,
//! domains, telephone numbers — found, normalised and scored. Pure: the
//! blocklist's intake, its review page and its feeds all ask here, so one
//! scam link reported a hundred ways is one entry.

use serde::{Deserialize, Serialize};

/// The kinds of indicator the blocklist carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorKind {
    /// A whole address: scheme, host, path (`https://kb-secure.top/login`).
    Url,
    /// The host a reported address or sender email names.
    Domain,
    /// A telephone number in E.164 (`+821012345678`).
    Phone,
}

impl IndicatorKind {
    pub const ALL: [IndicatorKind; 3] = [
        IndicatorKind::Url,
        IndicatorKind::Domain,
        IndicatorKind::Phone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorKind::Url => "url",
            IndicatorKind::Domain => "domain",
            IndicatorKind::Phone => "phone",
        }
    }

    pub fn parse(text: &str) -> Option<IndicatorKind> {
        IndicatorKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One normalised indicator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Indicator {
    pub kind: IndicatorKind,
    pub value: String,
}

/// Hosts never listed, however often reported: the government's own, and
/// the big platforms scammers quote beside their links (blocking them
/// would block everyone).
const NEVER: &[&str] = &[
    "go.kr",
    "gov.kr",
    "korea.kr",
    "google.com",
    "naver.com",
    "kakao.com",
    "apple.com",
];

fn never_listed(host: &str) -> bool {
    NEVER
        .iter()
        .any(|n| host == *n || host.ends_with(&format!(".{n}")))
}

/// Everything `text` points at: web addresses (with or without a scheme)
/// and their hosts, email senders' domains, and telephone numbers; sorted,
/// without repeats.
pub fn extract(text: &str) -> Vec<Indicator> {
    let mut found = Vec::new();
    let mut finder = linkify::LinkFinder::new();
    finder.url_must_have_scheme(false);
    for link in finder.links(text) {
        match link.kind() {
            linkify::LinkKind::Url => {
                if let Some((url, host)) = normalize_url(link.as_str()) {
                    if never_listed(&host) {
                        continue;
                    }
                    found.push(Indicator {
                        kind: IndicatorKind::Url,
                        value: url,
                    });
                    found.push(Indicator {
                        kind: IndicatorKind::Domain,
                        value: host,
                    });
                }
            }
            linkify::LinkKind::Email => {
                if let Some((_, host)) = link.as_str().rsplit_once('@')
                    && let Some(host) = normalize_host(host)
                    && !never_listed(&host)
                {
                    found.push(Indicator {
                        kind: IndicatorKind::Domain,
                        value: host,
                    });
                }
            }
            _ => {}
        }
    }
    found.extend(phones(text).into_iter().map(|value| Indicator {
        kind: IndicatorKind::Phone,
        value,
    }));
    found.sort();
    found.dedup();
    found
}

/// A host in its canonical form: lowercase, IDN as punycode, no trailing
/// dot; `None` for an address (an IP is not a domain) or a name without a
/// dot.
pub fn normalize_host(host: &str) -> Option<String> {
    let url = url::Url::parse(&format!("http://{}/", host.trim().trim_end_matches('.'))).ok()?;
    match url.host()? {
        // A DNS name: letters, digits and hyphens between the dots (IDNA
        // mapping can yield others, e.g. `⑴` → `(1)`, which no resolver takes).
        url::Host::Domain(d)
            if d.contains('.')
                && d.len() <= 253
                && d.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }) =>
        {
            Some(d.to_owned())
        }
        _ => None,
    }
}

/// A web address in canonical form (scheme lowercased, `http` assumed,
/// host canonical, default port, fragment and trailing punctuation
/// dropped), and its host.
pub fn normalize_url(text: &str) -> Option<(String, String)> {
    let text = text
        .trim()
        .trim_end_matches(['.', ',', ')', '!', '?', '"', '\'']);
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let mut url = url::Url::parse(&with_scheme).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let host = normalize_host(url.host_str()?)?;
    let mut value = url.to_string();
    if url.path() == "/" && url.query().is_none() {
        value.pop();
    }
    (value.len() <= 2000).then_some((value, host))
}

/// Telephone numbers in `text`, as E.164: runs of digits with the usual
/// separators (`010-1234-5678`, `+82 10 1234 5678`, `02)123-4567`,
/// `1588-1234`). Korean national numbers become `+82…`; a number with its
/// own `+` country code is kept; anything shorter than 8 or longer than 15
/// digits is not a number.
pub fn phones(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i].is_ascii_digit()
            || (chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit));
        // Part of a longer token (an address, an amount, a reference): skip it whole.
        let glued = i > 0
            && (chars[i - 1].is_ascii_alphanumeric()
                || matches!(chars[i - 1], '/' | '.' | '=' | '-' | ',' | '_'));
        if !starts || glued {
            i += 1;
            continue;
        }
        let mut digits = String::new();
        let plus = chars[i] == '+';
        let mut j = if plus { i + 1 } else { i };
        while j < chars.len() {
            let c = chars[j];
            if c.is_ascii_digit() {
                digits.push(c);
            } else if !matches!(c, '-' | ' ' | ')' | '(' | '.')
                || !chars.get(j + 1).is_some_and(char::is_ascii_digit)
            {
                break;
            }
            j += 1;
        }
        // Korean particles attach to numbers (`1588-1234로`): only ASCII glues.
        let followed_by_word = chars
            .get(j)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(*c, '/' | '@' | '_'));
        if !followed_by_word && let Some(e164) = e164(plus, &digits) {
            out.push(e164);
        }
        i = j.max(i + 1);
    }
    out
}

fn e164(plus: bool, digits: &str) -> Option<String> {
    let national = if plus {
        return (8..=15)
            .contains(&digits.len())
            .then(|| format!("+{digits}"));
    } else {
        digits
    };
    // Korean: a trunk 0 then 8–10 digits, or a 4+4 nationwide number (15xx, 16xx, 18xx).
    if let Some(rest) = national.strip_prefix('0') {
        return (8..=10).contains(&rest.len()).then(|| format!("+82{rest}"));
    }
    if national.len() == 8 && matches!(&national[..2], "15" | "16" | "18") {
        return Some(format!("+82{national}"));
    }
    None
}

/// How much an indicator deserves an analyst's attention now: each report
/// counts fully on its day and half as much each week after, summed as if
/// all came at the last report (the store keeps the count and the last
/// time, not every time).
pub fn score(reports: i64, last_reported_ms: i64, now_ms: i64) -> f64 {
    let weeks = (now_ms - last_reported_ms).max(0) as f64 / (7.0 * 86_400_000.0);
    reports.max(0) as f64 * 0.5f64.powf(weeks)
}

/// How long a listed indicator stays on the blocklist after its last
/// report, unless reported again.
pub const LISTED_FOR_MS: i64 = 90 * 86_400_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smishing_text_yields_its_link_host_and_number() {
        let text = "[국민은행] 고객님 계좌가 정지되었습니다. 확인: HTTPS://KB-Secure.Top/login?id=7#x 문의 010-1234-5678, 또는 +82 2 1234 5678. 참고 www.gov.kr";
        let found = extract(text);
        let values: Vec<(&str, &str)> = found
            .iter()
            .map(|i| (i.kind.as_str(), i.value.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("url", "https://kb-secure.top/login?id=7"),
                ("domain", "kb-secure.top"),
                ("phone", "+821012345678"),
                ("phone", "+82212345678"),
            ]
        );
    }

    #[test]
    fn the_same_link_reported_differently_is_one_indicator() {
        let a = extract("bit.ly/3xYz");
        let b = extract("see http://BIT.LY/3xYz.");
        assert_eq!(a, b);
        assert_eq!(a[0].value, "http://bit.ly/3xYz");
        // Internationalised names are kept as punycode, so lookalikes compare by what DNS sees.
        assert_eq!(
            normalize_url("http://택배.한국/a"),
            Some((
                "http://xn--2h3b319a.xn--3e0b707e/a".into(),
                "xn--2h3b319a.xn--3e0b707e".into()
            ))
        );
        assert_eq!(
            extract("from alerts@kb-bank-notice.com")[0].value,
            "kb-bank-notice.com"
        );
    }

    #[test]
    fn amounts_dates_and_references_are_not_numbers() {
        assert!(phones("송금액 1,500,000원, 2026-12-01, 주문번호 A12345678, 12345").is_empty());
        assert_eq!(phones("1588-1234로 전화"), ["+8215881234"]);
        assert_eq!(phones("(02)123-4567"), ["+822123 4567".replace(' ', "")]);
    }

    #[test]
    fn only_dns_names_are_domains() {
        // Found by the property below: IDNA maps `⑴` to `(1)`, not a DNS label.
        assert!(extract("⑴.AA ").is_empty());
        assert_eq!(
            normalize_host("Kb-Secure.TOP."),
            Some("kb-secure.top".into())
        );
    }

    #[test]
    fn recent_reports_weigh_more() {
        let now = 1_800_000_000_000;
        assert_eq!(score(4, now, now), 4.0);
        assert!((score(4, now - 7 * 86_400_000, now) - 2.0).abs() < 1e-9);
        assert!(score(10, now - 70 * 86_400_000, now) < score(1, now, now));
    }

    proptest::proptest! {
        #[test]
        fn extraction_never_panics_and_normalising_is_idempotent(text in "\\PC{0,300}") {
            let found = extract(&text);
            for i in &found {
                proptest::prop_assert!(!i.value.is_empty() && i.value.len() <= 2000);
                proptest::prop_assert!(!i.value.chars().any(char::is_whitespace));
            }
            // Normalising is idempotent, so one link reported a hundred ways stays one entry.
            for i in &found {
                match i.kind {
                    IndicatorKind::Url => proptest::prop_assert_eq!(
                        normalize_url(&i.value).map(|(u, _)| u),
                        Some(i.value.clone())
                    ),
                    IndicatorKind::Domain => {
                        proptest::prop_assert_eq!(normalize_host(&i.value), Some(i.value.clone()))
                    }
                    IndicatorKind::Phone => proptest::prop_assert!(
                        i.value.starts_with('+') && i.value[1..].bytes().all(|b| b.is_ascii_digit())
                    ),
                }
            }
        }
    }
}
