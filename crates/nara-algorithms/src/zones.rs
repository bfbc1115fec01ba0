//! Elderly protection zones: road cells ranked by expected excess crashes
//! involving older pedestrians, by empirical Bayes — each cell's count
//! shrunk towards the district's rate with a gamma prior fitted by the
//! method of moments (Poisson–gamma), exposure as the offset. A cell with
//! few crashes and little exposure no longer outranks one with a steady
//! record only by chance.
//!
//! The evaluation generates districts whose cells have a true rate, counts
//! three years to rank on and the two years after to check against: the
//! precision at k of the ranking (out of time) against ranking by raw counts.

use std::sync::LazyLock;

use nara_core::algorithms::{Factor, OutOfRange, Output};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Evaluation, Model, round, sha256_hex};

pub const CODE: &str = "elderly-protection-zones";
const VERSION: &str = "1.0.0";
/// Cells a district may hold.
const MAX_CELLS: usize = 5000;

pub struct EmpiricalBayes;

static MODEL: LazyLock<EmpiricalBayes> = LazyLock::new(|| EmpiricalBayes);

pub fn model() -> &'static dyn Model {
    &*MODEL
}

/// One cell's record.
#[derive(Debug, Clone)]
pub struct Cell {
    pub id: String,
    pub crashes: f64,
    /// Older pedestrians' exposure (e.g. residents over 65 × road km / 1000).
    pub exposure: f64,
}

/// Each cell's expected crashes and expected excess over the district's rate.
pub fn rank(cells: &[Cell]) -> Vec<(usize, f64, f64)> {
    let total_exposure: f64 = cells.iter().map(|c| c.exposure).sum();
    let mu = cells.iter().map(|c| c.crashes).sum::<f64>() / total_exposure.max(f64::MIN_POSITIVE);
    // Method of moments: the exposure-weighted variance of the raw rates,
    // less what Poisson noise alone explains, is the prior's variance.
    let mean_exposure = total_exposure / cells.len().max(1) as f64;
    let spread = cells
        .iter()
        .map(|c| c.exposure * (c.crashes / c.exposure - mu).powi(2))
        .sum::<f64>()
        / total_exposure.max(f64::MIN_POSITIVE);
    let prior_var = (spread - mu / mean_exposure).max(mu * mu * 1e-3 + 1e-12);
    let (alpha, beta) = (mu * mu / prior_var, mu / prior_var);
    let mut out: Vec<(usize, f64, f64)> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let posterior = (alpha + c.crashes) / (beta + c.exposure);
            (i, posterior * c.exposure, (posterior - mu) * c.exposure)
        })
        .collect();
    out.sort_by(|a, b| b.2.total_cmp(&a.2));
    out
}

fn parse(input: &serde_json::Value) -> Result<(Vec<Cell>, usize), OutOfRange> {
    let list = input
        .get("cells")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| OutOfRange::new("cells", "must be the district's road cells"))?;
    if !(5..=MAX_CELLS).contains(&list.len()) {
        return Err(OutOfRange::new(
            "cells",
            format!(
                "the model ranks 5 to {MAX_CELLS} cells (this district has {})",
                list.len()
            ),
        ));
    }
    let mut cells = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let id = c
            .get("id")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty() && s.chars().count() <= 40)
            .ok_or_else(|| {
                OutOfRange::new(format!("cells[{i}].id"), "must be 1 to 40 characters")
            })?;
        let crashes = c
            .get("crashes")
            .and_then(serde_json::Value::as_u64)
            .filter(|n| *n <= 1000)
            .ok_or_else(|| {
                OutOfRange::new(
                    format!("cells[{i}].crashes"),
                    "must be a whole number 0 to 1000",
                )
            })?;
        let exposure = c
            .get("exposure")
            .and_then(serde_json::Value::as_f64)
            .filter(|e| *e > 0.0 && *e <= 1e6)
            .ok_or_else(|| {
                OutOfRange::new(
                    format!("cells[{i}].exposure"),
                    "must be above 0 and at most 1,000,000",
                )
            })?;
        cells.push(Cell {
            id: id.to_owned(),
            crashes: crashes as f64,
            exposure,
        });
    }
    let k = match input.get("select") {
        None => 5.min(cells.len() / 2),
        Some(v) => v
            .as_u64()
            .map(|k| k as usize)
            .filter(|k| (1..=cells.len() / 2).contains(k))
            .ok_or_else(|| {
                OutOfRange::new(
                    "select",
                    format!("must be 1 to {} (half the cells)", cells.len() / 2),
                )
            })?,
    };
    if cells.iter().all(|c| c.crashes == 0.0) {
        return Err(OutOfRange::new(
            "cells",
            "no crashes recorded: nothing to rank",
        ));
    }
    Ok((cells, k))
}

impl Model for EmpiricalBayes {
    fn code(&self) -> &'static str {
        CODE
    }
    fn version(&self) -> &'static str {
        VERSION
    }
    fn artefact_sha256(&self) -> String {
        sha256_hex(b"empirical bayes poisson-gamma, method of moments, exposure offset, rank by expected excess")
    }
    fn outcomes(&self) -> &'static [&'static str] {
        &["zones_proposed", "zones_changed"]
    }
    fn example(&self) -> serde_json::Value {
        let cells: Vec<serde_json::Value> = [
            ("jongno-0412", 9, 6.1), ("jongno-0413", 2, 4.0), ("jongno-0501", 14, 7.9),
            ("jongno-0502", 1, 0.6), ("jongno-0617", 5, 5.2), ("jongno-0618", 3, 2.8),
            ("jongno-0702", 0, 1.9), ("jongno-0703", 7, 3.3),
        ]
        .iter()
        .map(|(id, crashes, exposure)| serde_json::json!({"id": id, "crashes": crashes, "exposure": exposure}))
        .collect();
        serde_json::json!({"cells": cells, "select": 3})
    }
    fn decide(&self, input: &serde_json::Value) -> Result<Output, OutOfRange> {
        let (cells, k) = parse(input)?;
        let ranked = rank(&cells);
        let factors = ranked
            .iter()
            .take(k)
            .map(|(i, expected, excess)| Factor {
                key: "zone_cell".into(),
                args: vec![
                    cells[*i].id.clone(),
                    format!("{:.0}", cells[*i].crashes),
                    format!("{expected:.1}"),
                    format!("{excess:.1}"),
                ],
                weight: round(*excess, 3),
            })
            .collect();
        Ok(Output {
            score: round(ranked.first().map_or(0.0, |r| r.2), 3),
            threshold: 0.0,
            outcome: "zones_proposed".into(),
            // Proposing zones is always an official's decision to make.
            flagged: true,
            factors,
        })
    }
}

/// A Poisson draw (Knuth's method for small means, a rounded normal above).
fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    if mean > 30.0 {
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        return (mean + z * mean.sqrt()).round().max(0.0);
    }
    let limit = (-mean).exp();
    let (mut k, mut p) = (0.0, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= limit {
            return k;
        }
        k += 1.0;
    }
}

/// A generated district: cells with exposure, a true rate (gamma, shape 2,
/// around the district's), three years' counts and the next two years'.
pub fn generated_district(seed: u64, cells: usize) -> Vec<(Cell, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..cells)
        .map(|i| {
            let exposure = (rng.random_range(-1.5f64..2.5)).exp();
            let multiplier: f64 = -(rng.random_range(f64::EPSILON..1.0f64).ln()
                + rng.random_range(f64::EPSILON..1.0f64).ln())
                / 2.0;
            let rate = 0.4 * multiplier;
            let before = poisson(&mut rng, rate * exposure * 3.0);
            let after = poisson(&mut rng, rate * exposure * 2.0);
            (
                Cell {
                    id: format!("cell-{i:04}"),
                    crashes: before,
                    exposure,
                },
                after,
            )
        })
        .collect()
}

/// Precision at k, out of time: of the k cells each ranking picks from three
/// years, how many are among the k with most excess crashes (over the
/// district's rate for their exposure) in the two years after.
pub fn evaluate() -> Evaluation {
    const K: usize = 20;
    let (mut eb, mut raw) = (Vec::new(), Vec::new());
    for seed in 0..50u64 {
        let district = generated_district(0x20E5 + seed, 400);
        let cells: Vec<Cell> = district.iter().map(|(c, _)| c.clone()).collect();
        // The truth: the cells with most excess crashes in the later years
        // over what the district's later rate predicts for their exposure.
        let later_rate = district.iter().map(|(_, after)| after).sum::<f64>()
            / district.iter().map(|(c, _)| c.exposure).sum::<f64>();
        let excess = |i: usize| district[i].1 - later_rate * district[i].0.exposure;
        let mut later: Vec<usize> = (0..district.len()).collect();
        later.sort_by(|a, b| excess(*b).total_cmp(&excess(*a)));
        let truth: std::collections::HashSet<usize> = later.into_iter().take(K).collect();
        let by_eb: Vec<usize> = rank(&cells).into_iter().take(K).map(|r| r.0).collect();
        let mut by_count: Vec<usize> = (0..cells.len()).collect();
        by_count.sort_by(|a, b| cells[*b].crashes.total_cmp(&cells[*a].crashes));
        let hits = |picked: &[usize]| {
            picked.iter().filter(|i| truth.contains(i)).count() as f64 / K as f64
        };
        eb.push(hits(&by_eb));
        raw.push(hits(&by_count[..K]));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Evaluation {
        model: CODE,
        version: VERSION,
        setting:
            "50 generated districts of 400 cells, ranked on three years, checked on the next two"
                .into(),
        figures: vec![
            (
                None,
                "precision_at_20_empirical_bayes".into(),
                round(mean(&eb), 3),
            ),
            (
                None,
                "precision_at_20_raw_counts".into(),
                round(mean(&raw), 3),
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_small_counts_towards_the_district() {
        let mut cells: Vec<Cell> = (0..10)
            .map(|i| Cell {
                id: format!("c{i}"),
                crashes: 4.0,
                exposure: 10.0,
            })
            .collect();
        // A tiny cell with one crash has the highest raw rate, not the
        // highest expected excess.
        cells.push(Cell {
            id: "tiny".into(),
            crashes: 1.0,
            exposure: 0.5,
        });
        cells.push(Cell {
            id: "busy".into(),
            crashes: 12.0,
            exposure: 12.0,
        });
        let ranked = rank(&cells);
        assert_eq!(cells[ranked[0].0].id, "busy");
    }

    #[test]
    fn beats_raw_counts_out_of_time() {
        let e = evaluate();
        let (a, b) = (
            e.figure("precision_at_20_empirical_bayes").unwrap_or(0.0),
            e.figure("precision_at_20_raw_counts").unwrap_or(1.0),
        );
        assert!(a >= b, "{e:?}");
    }

    #[test]
    fn refuses_districts_out_of_range() {
        assert!(model().decide(&serde_json::json!({"cells": []})).is_err());
        let cells: Vec<_> = (0..6)
            .map(|i| serde_json::json!({"id": format!("c{i}"), "crashes": 1, "exposure": -1}))
            .collect();
        assert!(
            model()
                .decide(&serde_json::json!({"cells": cells}))
                .is_err()
        );
    }
}
