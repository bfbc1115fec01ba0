//! `nara algorithms`: the reference models' evaluations, reproducible from
//! their generators, printed as the register publishes them; images' PDQ
//! hashes, and hash lists checked before a node loads them.

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
    /// Print each image's PDQ hash and quality (0–100) as `hash,quality,file`
    /// lines, as Meta's reference hasher does, so an authority can check its
    /// lists against nara's hashing.
    Pdq {
        #[arg(required = true)]
        images: Vec<std::path::PathBuf>,
        /// Print the eight orientations nara matches an image in (PDQ's
        /// dihedral hashes) as `hash,quality,orientation,file` lines, the
        /// orientation `0`, `90`, `180`, `270` (turned clockwise) or
        /// `mirrored+0` … `mirrored+270`.
        #[arg(long)]
        orientations: bool,
    },
    /// Check hash-list files (one PDQ hash a line, optionally followed by
    /// more fields) before placing them in DATA/hash-lists; exit non-zero
    /// naming the first bad line of any that does not parse.
    CheckList {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

pub fn run(command: AlgorithmsCommand) -> anyhow::Result<()> {
    match command {
        AlgorithmsCommand::Evaluate { codes, json } => evaluate(&codes, json),
        AlgorithmsCommand::Pdq {
            images,
            orientations,
        } => pdq(&images, orientations),
        AlgorithmsCommand::CheckList { files } => check_lists(&files),
    }
}

fn pdq(images: &[std::path::PathBuf], orientations: bool) -> anyhow::Result<()> {
    use nara_algorithms::images::{ORIENTATIONS, hash_image, hash_image_turned};
    let mut failed = 0;
    for path in images {
        let hashed = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                if orientations {
                    hash_image_turned(&bytes)
                } else {
                    hash_image(&bytes).map(|(hash, quality)| ([hash; 8], quality))
                }
                .map_err(|e| e.to_string())
            });
        match hashed {
            Ok((hashes, quality)) if orientations => {
                for (hash, (mirrored, degrees)) in hashes.iter().zip(ORIENTATIONS) {
                    let mirrored = if mirrored { "mirrored+" } else { "" };
                    let file = path.display();
                    println!("{},{quality},{mirrored}{degrees},{file}", hash.hex());
                }
            }
            Ok((hashes, quality)) => println!("{},{quality},{}", hashes[0].hex(), path.display()),
            Err(why) => {
                eprintln!("{}: {why}", path.display());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} images could not be hashed", images.len());
    }
    Ok(())
}

fn check_lists(files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let mut bad = 0;
    for file in files {
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                nara_algorithms::images::parse_list(&name, &text).map_err(|e| e.to_string())
            }) {
            Ok(list) => println!(
                "{}: {} hashes, SHA-256 {}",
                file.display(),
                list.hashes.len(),
                list.sha256
            ),
            Err(why) => {
                eprintln!("{}: {why}", file.display());
                bad += 1;
            }
        }
    }
    if bad > 0 {
        anyhow::bail!("{bad} of {} lists do not parse", files.len());
    }
    Ok(())
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
            println!("  {group:<16} {metric:<40} {value}");
        }
        println!();
    }
    Ok(())
}
