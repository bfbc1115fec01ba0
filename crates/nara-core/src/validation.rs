//! Field-level validation errors, shared by the API (RFC 9457 `errors` member)
//! and the pages (an error shown beside its field).

use serde::Serialize;
use utoipa::ToSchema;

/// One thing wrong with one field of an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the input, e.g. `name.ko` or `grade`.
    pub field: String,
    /// What is wrong, in plain English.
    pub detail: String,
}

/// An input that failed validation, with every problem found (not just the first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid input: {}", .errors.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect::<Vec<_>>().join("; "))]
pub struct Invalid {
    pub errors: Vec<FieldError>,
}

impl Invalid {
    pub fn one(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError {
                field: field.into(),
                detail: detail.into(),
            }],
        }
    }
}

/// Collects field errors while an input is checked.
#[derive(Debug, Default)]
pub struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    pub fn push(&mut self, field: impl Into<String>, detail: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            detail: detail.into(),
        });
    }

    /// A required, trimmed, printable text of at most `max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.push(field, "must not be empty");
        } else if trimmed.chars().count() > max {
            self.push(field, format!("must be at most {max} characters"));
        } else if value.chars().any(|c| c.is_control() && c != '\n') {
            self.push(field, "must not contain control characters");
        } else if trimmed.len() != value.len() {
            self.push(field, "must not start or end with whitespace");
        }
    }

    /// A machine code: 1–`max` of ASCII letters, digits, `-`, `_` and `.`.
    pub fn code(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() || value.len() > max {
            self.push(field, format!("must be 1 to {max} characters"));
        } else if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            self.push(
                field,
                "may contain only ASCII letters, digits, '-', '_' and '.'",
            );
        }
    }

    pub fn finish(self) -> Result<(), Invalid> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Invalid {
                errors: self.errors,
            })
        }
    }
}
