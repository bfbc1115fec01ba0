//! Images checked against the authorities' hash lists from an official's
//! page: the upload rules citizens' files follow (size, type by content,
//! no decompression bombs), hashed with PDQ on the blocking pool, and run
//! through [`run`] like every other input — the record names the image by
//! its SHA-256. The image is hashed in its eight orientations, so a turned
//! or mirrored copy matches too. Only a match keeps the image, in `data_dir/review-images`
//! (apart from citizens' uploads), for the officials who review the record
//! ([`nara_core::algorithms::may_see_image`]); each look is a security
//! event. An image that matches nothing is forgotten once hashed; a kept
//! one is deleted by an hourly sweep once every record made from it is
//! settled and `review_image_days` have passed
//! ([`nara_core::algorithms::image_hold`]).

use super::oversight::{RunAgain, image_hold_of, record_for, run_page, runnable, sees_image};
use super::{Requested, RunError, run};
use crate::AppState;
use crate::citizen::uploads::{Refused, check_file, file_form};
use crate::identity::auth::Principal;
use crate::identity::request::ClientAddress;
use crate::web::csrf::{csrf_ok, csrf_refused};
use crate::web::{PageCtx, PageError, store_failed};
use axum::extract::{Multipart, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use nara_store::algorithms::DecisionRecord;

/// Where matched images wait for their reviewers, under the data directory.
const FOLDER: &str = "review-images";

/// The largest image an official may check, in KiB.
const MAX_KIB: u32 = 20 * 1024;

/// The largest request body of an image check: the image and the form.
pub const BODY: usize = MAX_KIB as usize * 1024 + 64 * 1024;

/// What an image to check may be, judged by its content.
const TYPES: &[&str] = &["image/png", "image/jpeg"];

/// `POST /algorithms/{code}/image` (multipart: `csrf`, `file`): the image
/// checked and recorded; to the record's page, or the run page again with
/// why the image was refused.
pub async fn check_image(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path(code): Path<String>,
    multipart: Multipart,
) -> Result<Response, PageError> {
    let name = runnable(&ctx, &state, &who, &code).await?;
    if code != nara_algorithms::images::CODE {
        return Err(PageError::not_found(ctx.lang));
    }
    let (csrf, bytes) = file_form(&ctx, multipart).await?;
    if !csrf_ok(&ctx.caller, &csrf) {
        return Ok(csrf_refused(ctx.lang));
    }
    let refused = |why: String| {
        Ok(run_page(
            &ctx,
            &who,
            RunAgain {
                image_error: Some(why),
                ..RunAgain::example(&name, &code)
            },
        ))
    };
    let (input, bytes) = match hashed_input(bytes, MAX_KIB).await {
        Ok(hashed) => hashed,
        Err(ImageProblem::Refused(r)) => return refused(ctx.tr().s(r.key()).to_owned()),
        Err(ImageProblem::Unhashable(why)) => return refused(why),
    };
    let requested = Requested {
        subject_hash: None,
        source: None,
        requested_by: who.actor(),
    };
    let record = match run(&state, &code, input, requested).await {
        Ok(record) => record,
        Err(RunError::Store(e)) => return Err(store_failed(ctx.lang)(e)),
        Err(e) => return refused(e.to_string()),
    };
    keep_if_matched(&state, &record, &bytes).await;
    Ok(Redirect::to(&format!("/oversight/{}", record.id)).into_response())
}

/// Why an image was not hashed.
pub enum ImageProblem {
    /// The upload rules: empty, too large, not a PNG or JPEG by content,
    /// a decompression bomb.
    Refused(Refused),
    /// It does not decode, or PDQ cannot hash it.
    Unhashable(String),
}

impl ImageProblem {
    /// In English, for an API's problem detail.
    pub fn detail(&self) -> String {
        match self {
            ImageProblem::Refused(Refused::Empty) => "empty".into(),
            ImageProblem::Refused(Refused::TooLarge { max_kib }) => {
                format!("larger than {max_kib} KiB")
            }
            ImageProblem::Refused(Refused::NotAccepted(what)) => {
                format!("must be a PNG or JPEG image; this is {what}")
            }
            ImageProblem::Refused(Refused::Bomb) => {
                "its dimensions are too large to process".into()
            }
            ImageProblem::Refused(Refused::Infected(what)) => format!("refused: {what}"),
            ImageProblem::Unhashable(why) => why.clone(),
        }
    }
}

/// An image checked by the upload rules and hashed with PDQ on the
/// blocking pool, in its eight orientations (a turned or mirrored copy
/// matches too): the input `run` reads (hashes, quality, media type and the
/// image's SHA-256 — never the picture), and the bytes back.
pub async fn hashed_input(
    bytes: Vec<u8>,
    max_kib: u32,
) -> Result<(serde_json::Value, Vec<u8>), ImageProblem> {
    let media = check_file(&bytes, max_kib, TYPES).map_err(ImageProblem::Refused)?;
    let address = format!("sha256:{}", nara_core::algorithms::sha256_hex(&bytes));
    let hashed = tokio::task::spawn_blocking(move || {
        nara_algorithms::images::hash_image_turned(&bytes).map(|h| (h, bytes))
    })
    .await
    .map_err(|e| ImageProblem::Unhashable(e.to_string()))?;
    let ((hashes, quality), bytes) = hashed.map_err(|e| ImageProblem::Unhashable(e.to_string()))?;
    Ok((
        serde_json::json!({
            "pdq": hashes[0].hex(),
            "pdq_turned": hashes[1..].iter().map(|h| h.hex()).collect::<Vec<_>>(),
            "quality": quality,
            "image": address,
            "media_type": media,
        }),
        bytes,
    ))
}

/// The largest image a decision request may carry, in KiB (before base64;
/// the node's body limit may be lower: `max_body_bytes`).
const API_MAX_KIB: u32 = 8 * 1024;

/// A decision request's input for the image model: `image` (base64 of a
/// PNG or JPEG) checked and hashed like a page's upload, and the bytes to
/// keep if it matches; an input without `image` (a system that hashed the
/// picture itself) as it came. Only nara names a kept image, so `image`
/// is never taken as anything but the picture.
pub async fn api_input(
    code: &str,
    input: serde_json::Value,
) -> Result<(serde_json::Value, Option<Vec<u8>>), String> {
    if code != nara_algorithms::images::CODE {
        return Ok((input, None));
    }
    let Some(image) = input.get("image") else {
        return Ok((input, None));
    };
    if ["pdq", "pdq_turned", "quality"]
        .iter()
        .any(|field| input.get(field).is_some())
    {
        return Err("send the image or its PDQ hash and quality, not both".into());
    }
    let text = image
        .as_str()
        .ok_or_else(|| "must be a PNG or JPEG image in base64".to_owned())?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("must be a PNG or JPEG image in base64 ({e})"))?;
    let (input, bytes) = hashed_input(bytes, API_MAX_KIB)
        .await
        .map_err(|p| p.detail())?;
    Ok((input, Some(bytes)))
}

/// Keeps the image a record was made from when it matched, for its
/// reviewers; forgets it otherwise.
pub async fn keep_if_matched(state: &AppState, record: &DecisionRecord, bytes: &[u8]) {
    if record.flagged == 0 {
        return;
    }
    let folder = state.config.data_dir.join(FOLDER);
    if let Err(e) = crate::media::store_in(&folder, bytes).await {
        // The record stands; its reviewers find no image to open.
        tracing::error!(record = %record.id, error = %e, "a matched image could not be kept for review");
    }
}

/// `GET /oversight/{id}/image`: the image a match was made from, to the
/// officials who may see it, inline and never cached; 404 to anyone else.
pub async fn record_image(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    ClientAddress(client): ClientAddress,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let record = record_for(&ctx, &state, &who, &id).await?;
    if !sees_image(&record, &who, state.config.review_image_days) {
        return Err(PageError::not_found(ctx.lang));
    }
    let input: serde_json::Value = serde_json::from_str(&record.input).unwrap_or_default();
    let path = input
        .get("image")
        .and_then(|a| a.as_str())
        .and_then(|a| crate::media::path_in(&state.config.data_dir.join(FOLDER), a))
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| PageError::not_found(ctx.lang))?;
    crate::secops::watch::personal_data_read(
        &state,
        &who,
        &client,
        &format!("decision {id} image"),
    )
    .await;
    Ok((
        [
            (header::CONTENT_TYPE, crate::media::sniff(&bytes).to_owned()),
            (header::CONTENT_DISPOSITION, "inline".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_owned(),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

/// Deletes every kept image that no record holds any longer
/// ([`nara_core::algorithms::image_hold`] at `now_ms`), and any file no
/// record names; how many went. A file written or stored again after the
/// sweep began is left for the next one, so a match recorded meanwhile
/// never loses its image.
pub async fn sweep(state: &AppState, now_ms: i64) -> Result<usize, nara_store::StoreError> {
    let began = std::time::SystemTime::now();
    let keep_days = state.config.review_image_days;
    let mut held = std::collections::HashSet::new();
    let records = state
        .store
        .flagged_decisions_of(nara_algorithms::images::CODE)
        .await?;
    for record in &records {
        let input: serde_json::Value = serde_json::from_str(&record.input).unwrap_or_default();
        if let Some(address) = input.get("image").and_then(|a| a.as_str())
            && image_hold_of(record, keep_days).kept_at(now_ms)
        {
            held.insert(address.to_owned());
        }
    }
    let folder = state.config.data_dir.join(FOLDER);
    let mut deleted = 0;
    for path in kept_files(&folder) {
        let Some(hex) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let address = format!("sha256:{hex}");
        let touched = std::fs::metadata(&path).and_then(|m| m.modified());
        if held.contains(&address) || touched.map_or(true, |t| t >= began) {
            continue;
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                deleted += 1;
                tracing::info!(image = %address, keep_days, "a matched image past its keeping deleted");
            }
            // Another node sharing the data directory swept it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(image = %address, error = %e, "deleting a matched image"),
        }
    }
    Ok(deleted)
}

/// The kept images' files (`FOLDER/ab/abcd…`), temporary files left out.
fn kept_files(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(shards) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    shards
        .flatten()
        .filter_map(|shard| std::fs::read_dir(shard.path()).ok())
        .flat_map(|files| files.flatten().map(|f| f.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .collect()
}

/// Sweeps kept images every hour (the first a minute after start).
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3_600));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep(&state, nara_core::Timestamp::now().0).await {
                tracing::warn!(error = %e, "sweeping matched images");
            }
        }
    })
}
