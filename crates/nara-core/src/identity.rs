//! Who may use nara: account kinds, roles and the rules that make a
//! username, a national identifier or a password acceptable. No I/O and no
//! cryptography here; hashing lives where the keys are (the server).

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;

use crate::catalogue::domain_enum;
use crate::{Invalid, MemberId};

domain_enum!(
    /// What kind of person an account belongs to.
    AccountKind { Citizen = "citizen", Official = "official", Operator = "operator" }
);

domain_enum!(
    /// What an account may do. Official, agency admin and service designer
    /// are held *for an agency*; the others are platform-wide.
    Role {
        Citizen = "citizen",
        Official = "official",
        AgencyAdmin = "agency_admin",
        ServiceDesigner = "service_designer",
        Operator = "operator",
        SecurityAnalyst = "security_analyst",
        Auditor = "auditor",
    }
);

impl Role {
    /// Whether a grant of this role names the agency it is held for.
    pub fn agency_scoped(self) -> bool {
        matches!(
            self,
            Role::Official | Role::AgencyAdmin | Role::ServiceDesigner
        )
    }

    /// Staff roles reach other people's data or the platform itself, so they
    /// need a second factor (outside demo mode).
    pub fn needs_second_factor(self) -> bool {
        !matches!(self, Role::Citizen)
    }
}

impl AccountKind {
    /// Roles an account of this kind may be given at all: a citizen account
    /// never holds staff roles, so a stolen citizen login cannot become one.
    pub fn may_hold(self, role: Role) -> bool {
        match self {
            AccountKind::Citizen => role == Role::Citizen,
            AccountKind::Official => matches!(
                role,
                Role::Official
                    | Role::AgencyAdmin
                    | Role::ServiceDesigner
                    | Role::SecurityAnalyst
                    | Role::Auditor
            ),
            AccountKind::Operator => {
                matches!(role, Role::Operator | Role::SecurityAnalyst | Role::Auditor)
            }
        }
    }
}

/// One role held by an account, for one agency where the role is scoped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Grant {
    pub role: Role,
    #[schema(value_type = Option<String>)]
    pub agency: Option<MemberId>,
}

impl Grant {
    pub fn new(role: Role, agency: Option<MemberId>) -> Result<Grant, Invalid> {
        match (role.agency_scoped(), &agency) {
            (true, None) => Err(Invalid::one("agency", "this role is held for an agency")),
            (false, Some(_)) => Err(Invalid::one(
                "agency",
                "this role is platform-wide and names no agency",
            )),
            _ => Ok(Grant { role, agency }),
        }
    }
}

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 64;

/// The one spelling of a username: NFKC-normalised (so full-width `ａｄｍｉｎ` is
/// `admin`), lower-cased, and then only ASCII letters, digits, `.`, `-`, `_`.
/// Anything outside ASCII after normalisation (Cyrillic `а` posing as Latin
/// `a`, say) is refused rather than guessed at.
pub fn normalize_username(raw: &str) -> Result<String, Invalid> {
    if raw.len() > USERNAME_MAX * 4 {
        return Err(Invalid::one(
            "username",
            format!("must be {USERNAME_MIN} to {USERNAME_MAX} characters"),
        ));
    }
    let name: String = raw.trim().nfkc().collect::<String>().to_lowercase();
    if name.chars().count() < USERNAME_MIN || name.chars().count() > USERNAME_MAX {
        return Err(Invalid::one(
            "username",
            format!("must be {USERNAME_MIN} to {USERNAME_MAX} characters"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(Invalid::one(
            "username",
            "may contain only letters a–z, digits, '.', '-' and '_'",
        ));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(Invalid::one(
            "username",
            "must start with a letter or digit",
        ));
    }
    Ok(name)
}

/// A display name: printable text of 1–100 characters.
pub fn check_display_name(raw: &str) -> Result<String, Invalid> {
    let mut c = crate::validation::Checker::default();
    c.text("display_name", raw, 100);
    c.finish()?;
    Ok(raw.nfc().collect())
}

/// A resident registration number (주민등록번호), `YYMMDD-SNNNNNN`, as its
/// 13 digits. The date must exist and the seventh digit give the century
/// (1–4 Koreans, 5–8 foreign residents, 9/0 born in the 1800s). Numbers
/// issued since October 2020 end in random digits, so the old check digit is
/// not enforced.
pub fn normalize_national_id(raw: &str) -> Result<String, Invalid> {
    let bad = || {
        Invalid::one(
            "national_id",
            "must be a resident registration number: YYMMDD-SNNNNNN",
        )
    };
    let digits: String = raw.trim().chars().filter(|c| *c != '-').collect();
    if digits.len() != 13 || !digits.bytes().all(|b| b.is_ascii_digit()) || raw.len() > 20 {
        return Err(bad());
    }
    let d = |i: usize| u32::from(digits.as_bytes()[i] - b'0');
    let yy = d(0) * 10 + d(1);
    let month = d(2) * 10 + d(3);
    let day = d(4) * 10 + d(5);
    let century = match d(6) {
        1 | 2 | 5 | 6 => 1900,
        3 | 4 | 7 | 8 => 2000,
        9 | 0 => 1800,
        _ => return Err(bad()),
    };
    let year = century + yy;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if day == 0 || day > days_in_month {
        return Err(bad());
    }
    Ok(digits)
}

pub const PASSWORD_MIN: usize = 12;
/// Well above 64 (ASVS 5.0 2.1.2) so passphrases fit, and bounded so hashing
/// cost is bounded too.
pub const PASSWORD_MAX: usize = 256;

static COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

fn common_passwords() -> &'static std::collections::HashSet<&'static str> {
    static SET: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

/// Why a password is refused, as a stable key the pages translate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort,
    TooLong,
    Common,
    ContainsUsername,
}

impl PasswordProblem {
    pub fn key(self) -> &'static str {
        match self {
            PasswordProblem::TooShort => "password.too_short",
            PasswordProblem::TooLong => "password.too_long",
            PasswordProblem::Common => "password.common",
            PasswordProblem::ContainsUsername => "password.contains_username",
        }
    }

    pub fn detail(self) -> String {
        match self {
            PasswordProblem::TooShort => format!("must be at least {PASSWORD_MIN} characters"),
            PasswordProblem::TooLong => format!("must be at most {PASSWORD_MAX} characters"),
            PasswordProblem::Common => "is too common; choose a longer phrase".into(),
            PasswordProblem::ContainsUsername => "must not contain the username".into(),
        }
    }
}

/// Checks a new password (ASVS 5.0 V6.2): length in characters, not one of
/// the shipped common passwords (also with digits or punctuation appended,
/// or one character repeated), and not containing the username.
pub fn check_new_password(password: &str, username: &str) -> Result<(), PasswordProblem> {
    let len = password.chars().count();
    if len < PASSWORD_MIN {
        return Err(PasswordProblem::TooShort);
    }
    if len > PASSWORD_MAX {
        return Err(PasswordProblem::TooLong);
    }
    let lower = password.to_lowercase();
    if !username.is_empty() && lower.contains(&username.to_lowercase()) {
        return Err(PasswordProblem::ContainsUsername);
    }
    let common = common_passwords();
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    let first = lower.chars().next().unwrap_or(' ');
    if common.contains(lower.as_str())
        || (stem.len() >= 4 && common.contains(stem))
        || lower.chars().all(|c| c == first)
        || is_run(&lower)
    {
        return Err(PasswordProblem::Common);
    }
    Ok(())
}

/// `123456789012`, `abcdefghijkl`: consecutive characters all the way.
fn is_run(s: &str) -> bool {
    let b: Vec<char> = s.chars().collect();
    b.windows(2)
        .all(|w| (w[1] as u32).wrapping_sub(w[0] as u32) == 1)
        || b.windows(2)
            .all(|w| (w[0] as u32).wrapping_sub(w[1] as u32) == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn usernames_normalise_to_one_spelling() {
        assert_eq!(normalize_username("Kim.Minji").unwrap(), "kim.minji");
        assert_eq!(normalize_username("ＡＤＭＩＮ").unwrap(), "admin");
        assert_eq!(normalize_username("  lee_01 ").unwrap(), "lee_01");
        // Cyrillic а (U+0430) looks like Latin a.
        assert!(normalize_username("\u{0430}dmin").is_err());
        assert!(normalize_username("ab").is_err());
        assert!(normalize_username(&"a".repeat(65)).is_err());
        assert!(normalize_username("a'; DROP TABLE accounts;--").is_err());
        assert!(normalize_username("-admin").is_err());
        assert!(normalize_username("김민지").is_err());
    }

    #[test]
    fn national_ids_are_checked() {
        assert_eq!(
            normalize_national_id("900101-1234567").unwrap(),
            "9001011234567"
        );
        assert!(normalize_national_id("0002293123456").is_ok()); // 2000 was a leap year
        assert!(normalize_national_id("010229-3123456").is_err()); // 2001 was not
        assert!(normalize_national_id("901301-1234567").is_err());
        assert!(normalize_national_id("900100-1234567").is_err());
        assert!(normalize_national_id("90010112345678").is_err());
        assert!(normalize_national_id("9001011234a67").is_err());
        assert!(normalize_national_id("").is_err());
    }

    #[test]
    fn passwords_follow_the_policy() {
        assert_eq!(
            check_new_password("short", "minji"),
            Err(PasswordProblem::TooShort)
        );
        assert_eq!(
            check_new_password(&"x".repeat(257), "minji"),
            Err(PasswordProblem::TooLong)
        );
        assert!(check_new_password(&"correct horse ".repeat(18), "minji").is_ok()); // 252 chars
        assert_eq!(
            check_new_password("qwertyuiop123", "minji"),
            Err(PasswordProblem::Common)
        );
        assert_eq!(
            check_new_password("password1234!", "minji"),
            Err(PasswordProblem::Common)
        );
        assert_eq!(
            check_new_password("abcdefghijklm", "minji"),
            Err(PasswordProblem::Common)
        );
        assert_eq!(
            check_new_password("aaaaaaaaaaaaaa", "minji"),
            Err(PasswordProblem::Common)
        );
        assert_eq!(
            check_new_password("minji-is-great-2026", "minji"),
            Err(PasswordProblem::ContainsUsername)
        );
        assert!(check_new_password("오늘은 맑은 하늘 아래 걷는다", "minji").is_ok());
        assert!(check_new_password("tangerine-lantern-river", "minji").is_ok());
    }

    #[test]
    fn scoped_roles_name_their_agency() {
        let a: MemberId = "KR/GOV/1741000".parse().unwrap();
        assert!(Grant::new(Role::AgencyAdmin, Some(a.clone())).is_ok());
        assert!(Grant::new(Role::AgencyAdmin, None).is_err());
        assert!(Grant::new(Role::Operator, Some(a)).is_err());
        assert!(Grant::new(Role::Auditor, None).is_ok());
    }

    proptest! {
        #[test]
        fn normalisation_never_panics_and_is_idempotent(s in "\\PC{0,80}") {
            if let Ok(n) = normalize_username(&s) {
                prop_assert_eq!(normalize_username(&n).unwrap(), n);
            }
            let _ = normalize_national_id(&s);
            let _ = check_new_password(&s, "user");
        }
    }
}
