//! Images checked against the authorities' hash lists from an official's
//! page: the upload rules citizens' files follow (size, type by content,
//! no decompression bombs), hashed with PDQ on the blocking pool, and run
//! through [`run`] like every other input — the record names the image by
//! its SHA-256. Only a match keeps the image, in `data_dir/review-images`
//! (apart from citizens' uploads), for the officials who review the record
//! ([`nara_core::algorithms::may_see_image`]); each look is a security
//! event. An image that matches nothing is forgotten once hashed.

use super::oversight::{RunAgain, record_for, run_page, runnable, sees_image};
use super::{Requested, RunError, run};
use crate::AppState;
use crate::citizen::uploads::check_file;
use crate::identity::auth::Principal;
use crate::identity::request::ClientAddress;
use crate::web::csrf::{csrf_ok, csrf_refused};
use crate::web::{PageCtx, PageError, store_failed};
use axum::extract::{Multipart, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

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
    mut multipart: Multipart,
) -> Result<Response, PageError> {
    let name = runnable(&ctx, &state, &who, &code).await?;
    if code != nara_algorithms::images::CODE {
        return Err(PageError::not_found(ctx.lang));
    }
    let mut csrf = String::new();
    let mut bytes = Vec::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(part)) => match part.name() {
                Some("csrf") => csrf = part.text().await.unwrap_or_default(),
                Some("file") => match part.bytes().await {
                    Ok(b) => bytes = b.to_vec(),
                    Err(_) => return Err(PageError::payload_too_large(ctx.lang)),
                },
                _ => {}
            },
            Ok(None) => break,
            Err(_) => return Err(PageError::payload_too_large(ctx.lang)),
        }
    }
    if !csrf_ok(&ctx.caller, &csrf) {
        return Ok(csrf_refused(ctx.lang));
    }
    let refused = |why: String| {
        let example = nara_algorithms::model(&code)
            .map(|m| serde_json::to_string_pretty(&m.example()).unwrap_or_default())
            .unwrap_or_default();
        Ok(run_page(
            &ctx,
            &who,
            RunAgain {
                name: &name,
                code: &code,
                input: example,
                error: None,
                image_error: Some(why),
            },
        ))
    };
    let media = match check_file(&bytes, MAX_KIB, TYPES) {
        Ok(media) => media,
        Err(r) => return refused(ctx.tr().s(r.key()).to_owned()),
    };
    let address = format!("sha256:{}", nara_core::algorithms::sha256_hex(&bytes));
    let hashed = tokio::task::spawn_blocking(move || {
        nara_algorithms::images::hash_image(&bytes).map(|h| (h, bytes))
    })
    .await
    .map_err(|_| PageError::internal(ctx.lang))?;
    let ((pdq, quality), bytes) = match hashed {
        Ok(h) => h,
        Err(e) => return refused(e.to_string()),
    };
    let input = serde_json::json!({
        "pdq": pdq.hex(),
        "quality": quality,
        "image": address,
        "media_type": media,
    });
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
    if record.flagged != 0 {
        let folder = state.config.data_dir.join(FOLDER);
        if let Err(e) = crate::media::store_in(&folder, &bytes).await {
            // The record stands; its reviewers read that the image was not kept.
            tracing::error!(record = %record.id, error = %e, "a matched image could not be kept for review");
        }
    }
    Ok(Redirect::to(&format!("/oversight/{}", record.id)).into_response())
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
    if !sees_image(&record, &who) {
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
