//! Traffic signal timing by Webster's method: from each phase's critical
//! flow (detector counts, or a short-term forecast of them by Holt's linear
//! exponential smoothing) and saturation flow, the optimum cycle
//! `C₀ = (1.5·L + 5) / (1 − Y)` and green splits in proportion to each
//! phase's flow ratio. Webster's method holds for an undersaturated junction:
//! `Y` at or above 0.9 is refused, not extrapolated.
//!
//! The evaluation plans a generated day (96 quarter hours, morning and
//! evening peaks in opposite directions) quarter by quarter from forecasts,
//! against one fixed-time plan designed for the day's average, and compares
//! the average delay per vehicle by one formula for both (the HCM's uniform
//! plus incremental delay, which stays finite when a plan overloads an
//! approach).

use std::sync::LazyLock;

use nara_core::algorithms::{Factor, OutOfRange, Output};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Evaluation, Model, in_range, number, round, sha256_hex};

pub const CODE: &str = "traffic-signals";
const VERSION: &str = "1.0.0";
/// `Y` at which a plan is flagged for an engineer's review.
pub const REVIEW_AT: f64 = 0.8;
/// `Y` from which Webster's method no longer holds.
pub const MAX_Y: f64 = 0.9;
const MIN_CYCLE: f64 = 30.0;
const MAX_CYCLE: f64 = 150.0;
/// Holt's smoothing constants (level, trend).
const ALPHA: f64 = 0.5;
const BETA: f64 = 0.2;

/// The method's parameters are its artefact: there is nothing trained.
pub struct Webster;

static MODEL: LazyLock<Webster> = LazyLock::new(|| Webster);

pub fn model() -> &'static dyn Model {
    &*MODEL
}

/// One phase's demand.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    /// Critical flow, vehicles per hour.
    pub flow: f64,
    /// Saturation flow, vehicles per hour of green.
    pub saturation: f64,
    /// Lost time, seconds.
    pub lost: f64,
}

/// A signal plan: cycle and effective greens, seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub cycle: f64,
    pub greens: Vec<f64>,
    /// Sum of the critical flow ratios.
    pub y: f64,
}

/// Webster's optimum cycle and splits.
pub fn webster(phases: &[Phase]) -> Plan {
    let lost: f64 = phases.iter().map(|p| p.lost).sum();
    let ratios: Vec<f64> = phases.iter().map(|p| p.flow / p.saturation).collect();
    let y: f64 = ratios.iter().sum();
    let cycle = ((1.5 * lost + 5.0) / (1.0 - y.min(0.95))).clamp(MIN_CYCLE, MAX_CYCLE);
    let greens = ratios
        .iter()
        .map(|r| {
            if y > 0.0 {
                (cycle - lost) * r / y
            } else {
                (cycle - lost) / phases.len() as f64
            }
        })
        .collect();
    Plan { cycle, greens, y }
}

/// Average delay per vehicle (s) on one approach: the HCM's uniform delay
/// plus incremental delay over a quarter hour (`T = 0.25 h`, random
/// arrivals `k = 0.5`, `I = 1`).
pub fn delay(flow: f64, saturation: f64, green: f64, cycle: f64) -> f64 {
    if flow <= 0.0 {
        return 0.0;
    }
    let g = green / cycle;
    let capacity = saturation * g;
    let x = flow / capacity;
    let uniform = 0.5 * cycle * (1.0 - g).powi(2) / (1.0 - x.min(1.0) * g);
    let t = 0.25;
    let incremental =
        900.0 * t * ((x - 1.0) + ((x - 1.0).powi(2) + 8.0 * 0.5 * x / (capacity * t)).sqrt());
    uniform + incremental
}

/// Holt's forecast of the next count from recent ones.
pub fn forecast(counts: &[f64]) -> f64 {
    let Some((&first, rest)) = counts.split_first() else {
        return 0.0;
    };
    let (mut level, mut trend) = (first, 0.0);
    for &c in rest {
        let previous = level;
        level = ALPHA * c + (1.0 - ALPHA) * (level + trend);
        trend = BETA * (level - previous) + (1.0 - BETA) * trend;
    }
    (level + trend).max(0.0)
}

fn parse(input: &serde_json::Value) -> Result<(Vec<Phase>, Vec<Option<f64>>), OutOfRange> {
    let phases = input
        .get("phases")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| OutOfRange::new("phases", "must be a list of the junction's phases"))?;
    if !(2..=6).contains(&phases.len()) {
        return Err(OutOfRange::new(
            "phases",
            format!(
                "the model times 2 to 6 phases (this junction has {})",
                phases.len()
            ),
        ));
    }
    let mut out = Vec::new();
    let mut forecasts = Vec::new();
    for (i, p) in phases.iter().enumerate() {
        let field = |f: &str| format!("phases[{i}].{f}");
        let name = p
            .get("name")
            .and_then(serde_json::Value::as_str)
            .filter(|n| !n.trim().is_empty() && n.chars().count() <= 60)
            .ok_or_else(|| OutOfRange::new(field("name"), "must be 1 to 60 characters"))?;
        let saturation = in_range(
            &field("saturation_veh_h"),
            number(p, "saturation_veh_h")
                .map_err(|e| OutOfRange::new(field(&e.field), e.detail))?,
            1200.0,
            7200.0,
        )?;
        let lost = match p.get("lost_time_s") {
            None => 4.0,
            Some(_) => in_range(
                &field("lost_time_s"),
                number(p, "lost_time_s").map_err(|e| OutOfRange::new(field(&e.field), e.detail))?,
                2.0,
                8.0,
            )?,
        };
        let (flow, predicted) = match p.get("recent_counts") {
            Some(counts) => {
                let counts = counts
                    .as_array()
                    .filter(|c| (4..=96).contains(&c.len()))
                    .ok_or_else(|| {
                        OutOfRange::new(
                            field("recent_counts"),
                            "must be 4 to 96 quarter-hour counts",
                        )
                    })?
                    .iter()
                    .map(|c| {
                        c.as_f64()
                            .filter(|v| (0.0..=2000.0).contains(v))
                            .ok_or_else(|| {
                                OutOfRange::new(
                                    field("recent_counts"),
                                    "each count must be 0 to 2000 vehicles a quarter hour",
                                )
                            })
                    })
                    .collect::<Result<Vec<f64>, _>>()?;
                let next = forecast(&counts) * 4.0;
                (next, Some(next))
            }
            None => (
                in_range(
                    &field("flow_veh_h"),
                    number(p, "flow_veh_h")
                        .map_err(|e| OutOfRange::new(field(&e.field), e.detail))?,
                    0.0,
                    saturation,
                )?,
                None,
            ),
        };
        out.push(Phase {
            name: name.to_owned(),
            flow,
            saturation,
            lost,
        });
        forecasts.push(predicted);
    }
    Ok((out, forecasts))
}

impl Model for Webster {
    fn code(&self) -> &'static str {
        CODE
    }
    fn version(&self) -> &'static str {
        VERSION
    }
    fn artefact_sha256(&self) -> String {
        sha256_hex(
            format!(
                "webster 1.5L+5/(1-Y) cycle {MIN_CYCLE}-{MAX_CYCLE} holt {ALPHA} {BETA} review {REVIEW_AT} max {MAX_Y}"
            )
            .as_bytes(),
        )
    }
    fn outcomes(&self) -> &'static [&'static str] {
        &["plan", "plan_near_saturation", "time_of_day_plan"]
    }
    fn example(&self) -> serde_json::Value {
        serde_json::json!({"phases": [
            {"name": "north-south", "saturation_veh_h": 3600, "recent_counts": [210, 236, 251, 270, 284, 301]},
            {"name": "east-west", "flow_veh_h": 820, "saturation_veh_h": 3600},
            {"name": "left turns", "flow_veh_h": 160, "saturation_veh_h": 1700, "lost_time_s": 5}]})
    }
    fn decide(&self, input: &serde_json::Value) -> Result<Output, OutOfRange> {
        let (phases, forecasts) = parse(input)?;
        let plan = webster(&phases);
        if plan.y >= MAX_Y {
            return Err(OutOfRange::new(
                "phases",
                format!(
                    "the flow ratios sum to Y = {:.2}; Webster's method holds below {MAX_Y} — an oversaturated junction needs an engineer",
                    plan.y
                ),
            ));
        }
        let flagged = plan.y >= REVIEW_AT;
        let lost: f64 = phases.iter().map(|p| p.lost).sum();
        let mut factors = vec![Factor {
            key: "signal_cycle".into(),
            args: vec![
                format!("{:.0}", plan.cycle),
                format!("{lost:.0}"),
                format!("{:.2}", plan.y),
            ],
            weight: round(plan.y, 3),
        }];
        let mut order: Vec<usize> = (0..phases.len()).collect();
        order.sort_by(|a, b| {
            (phases[*b].flow / phases[*b].saturation)
                .total_cmp(&(phases[*a].flow / phases[*a].saturation))
        });
        for i in order {
            let p = &phases[i];
            factors.push(Factor {
                key: "signal_green".into(),
                args: vec![
                    p.name.clone(),
                    format!("{:.0}", plan.greens[i]),
                    format!("{:.2}", p.flow / p.saturation),
                ],
                weight: round(p.flow / p.saturation, 3),
            });
            if let Some(f) = forecasts[i] {
                factors.push(Factor {
                    key: "signal_forecast".into(),
                    args: vec![p.name.clone(), format!("{f:.0}")],
                    weight: 0.0,
                });
            }
        }
        Ok(Output {
            score: round(plan.y, 4),
            threshold: REVIEW_AT,
            outcome: if flagged {
                "plan_near_saturation"
            } else {
                "plan"
            }
            .into(),
            flagged,
            factors,
        })
    }
}

/// Generated demand of one junction for a day: vehicles per quarter hour for
/// each of three phases (north–south through, east–west through, left
/// turns), peaks in opposite directions morning and evening.
pub fn generated_day(seed: u64) -> Vec<[f64; 3]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bump = |t: f64, at: f64, width: f64| (-((t - at) / width).powi(2)).exp();
    (0..96)
        .map(|q| {
            let t = q as f64 / 4.0;
            let base = 0.25 + 0.35 * bump(t, 13.0, 4.0);
            let morning = bump(t, 8.0, 1.2);
            let evening = bump(t, 18.0, 1.5);
            let mean = [
                300.0 * (base + 0.75 * morning + 0.35 * evening),
                280.0 * (base + 0.3 * morning + 0.8 * evening),
                70.0 * (base + 0.4 * morning + 0.4 * evening),
            ];
            // Counts scatter around the mean (about ±8%).
            mean.map(|m| (m * (1.0 + rng.random_range(-0.08..0.08))).round())
        })
        .collect()
}

const SATURATION: [f64; 3] = [3600.0, 3600.0, 1700.0];

fn day_delay(day: &[[f64; 3]], plan_for: impl Fn(usize) -> Plan) -> f64 {
    let (mut total, mut vehicles) = (0.0, 0.0);
    for (q, counts) in day.iter().enumerate() {
        let plan = plan_for(q);
        for i in 0..3 {
            let flow = counts[i] * 4.0;
            total += delay(flow, SATURATION[i], plan.greens[i], plan.cycle) * counts[i];
            vehicles += counts[i];
        }
    }
    total / vehicles.max(1.0)
}

fn phases_with(flows: [f64; 3]) -> Vec<Phase> {
    (0..3)
        .map(|i| Phase {
            name: ["north-south", "east-west", "left turns"][i].into(),
            flow: flows[i],
            saturation: SATURATION[i],
            lost: 4.0,
        })
        .collect()
}

/// Plans 30 generated days quarter by quarter from forecasts of the last two
/// hours' counts, against a fixed-time plan designed for the day's average
/// flows and against three time-of-day plans; the average delay per vehicle
/// of each, and the forecast's error.
pub fn evaluate() -> Evaluation {
    let (mut adaptive, mut fixed, mut errors, mut peaks_adaptive, mut peaks_fixed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut time_of_day = Vec::new();
    for day_seed in 0..30u64 {
        let day = generated_day(0x516_0000 + day_seed);
        let average: [f64; 3] =
            std::array::from_fn(|i| day.iter().map(|c| c[i] * 4.0).sum::<f64>() / day.len() as f64);
        let fixed_plan = webster(&phases_with(average));
        // What cities run instead: three time-of-day plans (morning peak
        // 07–10, evening peak 16–20, the rest), each for its period's average.
        let period = |q: usize| match q / 4 {
            7..=9 => 0,
            16..=19 => 1,
            _ => 2,
        };
        let period_plans: Vec<Plan> = (0..3)
            .map(|p| {
                let quarters: Vec<&[f64; 3]> = day
                    .iter()
                    .enumerate()
                    .filter(|(q, _)| period(*q) == p)
                    .map(|(_, c)| c)
                    .collect();
                let flows: [f64; 3] = std::array::from_fn(|i| {
                    quarters.iter().map(|c| c[i] * 4.0).sum::<f64>() / quarters.len().max(1) as f64
                });
                webster(&phases_with(flows))
            })
            .collect();
        let plan_at = |q: usize| {
            let from = q.saturating_sub(8);
            let flows: [f64; 3] = std::array::from_fn(|i| {
                if q < 4 {
                    average[i]
                } else {
                    let recent: Vec<f64> = day[from..q].iter().map(|c| c[i]).collect();
                    forecast(&recent) * 4.0
                }
            });
            webster(&phases_with(flows))
        };
        for q in 4..96usize {
            let recent: Vec<f64> = day[q.saturating_sub(8)..q].iter().map(|c| c[0]).collect();
            let f = forecast(&recent);
            if day[q][0] > 0.0 {
                errors.push(((f - day[q][0]) / day[q][0]).abs());
            }
        }
        adaptive.push(day_delay(&day, plan_at));
        fixed.push(day_delay(&day, |_| fixed_plan.clone()));
        time_of_day.push(day_delay(&day, |q| period_plans[period(q)].clone()));
        // The evening peak, 17:00–19:00.
        let peak = &day[68..76];
        peaks_adaptive.push(day_delay(peak, |q| plan_at(q + 68)));
        peaks_fixed.push(day_delay(peak, |_| fixed_plan.clone()));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (a, f) = (mean(&adaptive), mean(&fixed));
    let (pa, pf) = (mean(&peaks_adaptive), mean(&peaks_fixed));
    Evaluation {
        model: CODE,
        version: VERSION,
        setting: "30 generated days of a three-phase junction, 96 quarter hours each, planned from Holt forecasts of the last two hours, against one fixed-time plan for the day's average and against three time-of-day plans".into(),
        figures: vec![
            (None, "delay_s_per_vehicle_webster".into(), round(a, 2)),
            (None, "delay_s_per_vehicle_fixed".into(), round(f, 2)),
            (None, "delay_ratio_webster_to_fixed".into(), round(a / f, 3)),
            (None, "delay_s_per_vehicle_time_of_day_plans".into(), round(mean(&time_of_day), 2)),
            (Some("evening peak".into()), "delay_s_per_vehicle_webster".into(), round(pa, 2)),
            (Some("evening peak".into()), "delay_s_per_vehicle_fixed".into(), round(pf, 2)),
            (None, "forecast_mape".into(), round(mean(&errors), 3)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webster_textbook_example() {
        // Two phases, y = 0.25 and 0.30, L = 10 s: C₀ = 20 / 0.45 = 44.4 s.
        let plan = webster(&[
            Phase {
                name: "a".into(),
                flow: 450.0,
                saturation: 1800.0,
                lost: 5.0,
            },
            Phase {
                name: "b".into(),
                flow: 540.0,
                saturation: 1800.0,
                lost: 5.0,
            },
        ]);
        assert!((plan.cycle - 44.44).abs() < 0.01, "{plan:?}");
        assert!((plan.greens[0] + plan.greens[1] + 10.0 - plan.cycle).abs() < 1e-9);
        assert!((plan.greens[1] / plan.greens[0] - 1.2).abs() < 1e-9);
    }

    #[test]
    fn refuses_an_oversaturated_junction() {
        let input = serde_json::json!({"phases": [
            {"name": "a", "flow_veh_h": 900, "saturation_veh_h": 1800},
            {"name": "b", "flow_veh_h": 800, "saturation_veh_h": 1800}]});
        let e = model().decide(&input).err();
        assert!(e.is_some_and(|e| e.detail.contains("0.9")));
        let input = serde_json::json!({"phases": [
            {"name": "a", "flow_veh_h": 500, "saturation_veh_h": 1800}]});
        assert!(model().decide(&input).is_err());
    }

    #[test]
    fn adaptive_plans_beat_the_fixed_plan() {
        let e = evaluate();
        let ratio = e.figure("delay_ratio_webster_to_fixed").unwrap_or(9.0);
        assert!(ratio < 1.0, "{e:?}");
    }
}
