//! nara's reference models for Korea's public uses of AI: small,
//! interpretable, written in Rust, trained and evaluated reproducibly on data
//! that a documented generator makes (no real personal data ships). Each model
//! refuses input outside the range it was built for, naming the range, and
//! explains each output with its main factors.
//!
//! No I/O: the server runs a model only behind its decision record
//! (`nara_server::algorithms`), and `nara algorithms evaluate` prints the
//! evaluation.

pub mod grooming;
pub mod images;
pub mod phishing;
pub mod register;
pub mod schools;
pub mod signals;
pub mod textclass;
pub mod zones;

use nara_core::algorithms::{OutOfRange, Output};

/// A model behind the register: what it is, and what it says of an input.
pub trait Model: Send + Sync {
    /// The register entry's code.
    fn code(&self) -> &'static str;
    fn version(&self) -> &'static str;
    /// SHA-256 of the model's artefact (its parameters as trained), hex.
    fn artefact_sha256(&self) -> String;
    /// The output for one input, or why the input is outside the model's range.
    fn decide(&self, input: &serde_json::Value) -> Result<Output, OutOfRange>;
    /// Every outcome a record of this model may end with: the model's own,
    /// and those only a reviewing official chooses.
    fn outcomes(&self) -> &'static [&'static str];
    /// An example input, as the officials' page and the API document show it.
    fn example(&self) -> serde_json::Value;
    /// Whether one decision may take milliseconds (a list of a million
    /// hashes compared): a server runs such a model off its async threads,
    /// and the others (microseconds) in place.
    fn slow(&self) -> bool {
        false
    }
}

/// An evaluation's figures, as the register and the command print them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    pub model: &'static str,
    pub version: &'static str,
    /// What was measured on what, in one line.
    pub setting: String,
    /// `(subgroup, metric, value)`; `None` for the whole set.
    pub figures: Vec<(Option<String>, String, f64)>,
}

impl Evaluation {
    pub fn figure(&self, metric: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|(g, m, _)| g.is_none() && m == metric)
            .map(|(_, _, v)| *v)
    }
}

/// Every reference model, trained (deterministically) on first use.
pub fn models() -> Vec<&'static dyn Model> {
    vec![
        phishing::model(),
        signals::model(),
        zones::model(),
        schools::model(),
        images::model(),
        grooming::model(),
    ]
}

/// The model registered under `code`.
pub fn model(code: &str) -> Option<&'static dyn Model> {
    models().into_iter().find(|m| m.code() == code)
}

/// Every model's evaluation (trains and tests from the generators; seconds).
pub fn evaluate(code: &str) -> Option<Evaluation> {
    match code {
        phishing::CODE => Some(phishing::evaluate()),
        signals::CODE => Some(signals::evaluate()),
        zones::CODE => Some(zones::evaluate()),
        schools::CODE => Some(schools::evaluate()),
        images::CODE => Some(images::evaluate()),
        grooming::CODE => Some(grooming::evaluate()),
        _ => None,
    }
}

pub(crate) use nara_core::algorithms::sha256_hex;

/// A number field of an input object.
pub(crate) fn number(input: &serde_json::Value, field: &str) -> Result<f64, OutOfRange> {
    input
        .get(field)
        .and_then(serde_json::Value::as_f64)
        .filter(|v| v.is_finite())
        .ok_or_else(|| OutOfRange::new(field, "must be a number"))
}

/// A number that must lie in `lo..=hi` (the model's documented range).
pub(crate) fn in_range(field: &str, v: f64, lo: f64, hi: f64) -> Result<f64, OutOfRange> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(OutOfRange::new(
            field,
            format!("{v} is outside the model's range {lo}–{hi}"),
        ))
    }
}

/// A number rounded for people to read.
pub(crate) fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_example_is_decided_within_the_models_outcomes() {
        for m in crate::models() {
            if m.code() == crate::images::CODE {
                continue; // needs a hash list: tested in its module
            }
            let out = m
                .decide(&m.example())
                .unwrap_or_else(|e| panic!("{}: {e}", m.code()));
            assert!(m.outcomes().contains(&out.outcome.as_str()), "{}", m.code());
            assert!(!out.factors.is_empty(), "{}", m.code());
        }
    }
}
