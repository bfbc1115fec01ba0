//! `nara algorithms`: the reference models' evaluations, reproducible from
//! their generators, printed as the register publishes them.

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Subcommand)]
pub enum AlgorithmsCommand {
    /// Train each model from its generator and evaluate it on held-out
    /// data; print the figures (the register's performance section).
    Evaluate {
        /// Models to evaluate (register codes); all when none is named.
        codes: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: AlgorithmsCommand) -> anyhow::Result<()> {
    match command {
        AlgorithmsCommand::Evaluate { codes, json } => evaluate(&codes, json),
    }
}

fn evaluate(codes: &[String], json: bool) -> anyhow::Result<()> {
    let all: Vec<&str> = nara_algorithms::models().iter().map(|m| m.code()).collect();
    let chosen: Vec<&str> = if codes.is_empty() {
        all.clone()
    } else {
        codes.iter().map(String::as_str).collect()
    };
    if let Some(unknown) = chosen.iter().find(|c| !all.contains(c)) {
        anyhow::bail!("no model {unknown:?}; the models are {}", all.join(", "));
    }
    let bar = ProgressBar::new(chosen.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut evaluations = Vec::new();
    for code in chosen {
        bar.set_message(format!("training and evaluating {code}"));
        let started = std::time::Instant::now();
        let evaluation = nara_algorithms::evaluate(code)
            .ok_or_else(|| anyhow::anyhow!("no evaluation for {code}"))?;
        evaluations.push((evaluation, started.elapsed()));
        bar.inc(1);
    }
    bar.finish_and_clear();
    if json {
        let out: Vec<&nara_algorithms::Evaluation> = evaluations.iter().map(|(e, _)| e).collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for (e, took) in &evaluations {
        println!("{} {} — {:.1} s", e.model, e.version, took.as_secs_f64());
        println!("  {}", e.setting);
        for (group, metric, value) in &e.figures {
            let group = group.as_deref().unwrap_or("overall");
            println!("  {group:<14} {metric:<40} {value}");
        }
        println!();
    }
    Ok(())
}
