//! Files citizens attach to applications: limited in size per field, typed
//! by their content (never by name or declared type), refused when they
//! would expand into something huge (images of absurd dimensions; archives
//! are never accepted), scanned with ClamAV where it is installed (and
//! marked "not scanned" where not), stored once by content hash under
//! `data_dir/uploads`, and served back only to the applicant and to the
//! agency's officials at a step that shows the field.

use std::path::{Path as FsPath, PathBuf};

use axum::extract::{Multipart, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use nara_core::service_def::Field;
use nara_store::applications::Upload;
use serde_json::Value;

use crate::AppState;
use crate::identity::auth::Principal;
use crate::web::csrf::{csrf_ok, csrf_refused};
use crate::web::{PageCtx, PageError, store_failed};

/// The largest body an upload request may have: the largest file a
/// definition may allow (20 MiB) and the form around it.
pub const UPLOAD_BODY: usize = 20 * 1024 * 1024 + 64 * 1024;

/// Images larger than this many pixels are refused (a "decompression bomb"
/// is small on disk and enormous in memory).
const MAX_PIXELS: u64 = 50_000_000;

/// Why a file was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Empty,
    TooLarge {
        max_kib: u32,
    },
    /// Not one of the field's types, judged by content; what it looks like.
    NotAccepted(&'static str),
    /// An image whose dimensions would expand beyond reason.
    Bomb,
    Infected(String),
}

impl Refused {
    pub fn key(&self) -> &'static str {
        match self {
            Refused::Empty => "upload.empty",
            Refused::TooLarge { .. } => "upload.too_large",
            Refused::NotAccepted(_) => "upload.not_accepted",
            Refused::Bomb => "upload.bomb",
            Refused::Infected(_) => "upload.infected",
        }
    }
}

/// Where citizens' files are kept, under the data directory.
const FOLDER: &str = "uploads";

/// Checks a file against a file field: size, type by content, dimensions.
pub fn check(bytes: &[u8], field: &Field) -> Result<&'static str, Refused> {
    let accept: Vec<&str> = field.accept.iter().map(|a| a.get_ref().as_str()).collect();
    check_file(bytes, field.max_kib.unwrap_or(5 * 1024), &accept)
}

/// Checks a file: not empty, at most `max_kib`, one of the `accept`ed
/// media types by its content, and an image's header dimensions within
/// reason; its media type.
pub fn check_file(bytes: &[u8], max_kib: u32, accept: &[&str]) -> Result<&'static str, Refused> {
    if bytes.is_empty() {
        return Err(Refused::Empty);
    }
    if bytes.len() > max_kib as usize * 1024 {
        return Err(Refused::TooLarge { max_kib });
    }
    let media = crate::media::sniff(bytes);
    if !accept.contains(&media) {
        return Err(Refused::NotAccepted(media));
    }
    let size = match media {
        "image/png" => {
            Some(crate::media::png_size(bytes).ok_or(Refused::NotAccepted("a broken PNG"))?)
        }
        "image/jpeg" => {
            Some(crate::media::jpeg_size(bytes).ok_or(Refused::NotAccepted("a broken JPEG"))?)
        }
        _ => None,
    };
    if let Some((w, h)) = size
        && (w == 0 || h == 0 || w.saturating_mul(h) > MAX_PIXELS)
    {
        return Err(Refused::Bomb);
    }
    Ok(media)
}

/// What ClamAV said.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    Clean,
    Infected(String),
    NotScanned,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Scans with `clamdscan` (the daemon) or `clamscan`, whichever is
/// installed, reading the file from stdin; without either, `NotScanned`.
pub async fn scan(bytes: &[u8]) -> Scan {
    let Some(program) = on_path("clamdscan").or_else(|| on_path("clamscan")) else {
        return Scan::NotScanned;
    };
    use tokio::io::AsyncWriteExt;
    let child = tokio::process::Command::new(program)
        .args(["--no-summary", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(mut child) = child else {
        return Scan::NotScanned;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(bytes).await;
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output());
    match out.await {
        Ok(Ok(o)) if o.status.code() == Some(0) => Scan::Clean,
        Ok(Ok(o)) if o.status.code() == Some(1) => {
            Scan::Infected(String::from_utf8_lossy(&o.stdout).trim().to_owned())
        }
        _ => Scan::NotScanned,
    }
}

/// Where a content address lives on disk.
fn path_of(dir: &FsPath, hash: &str) -> Option<PathBuf> {
    crate::media::path_in(&dir.join(FOLDER), hash)
}

/// Stores the bytes under their content address in `data_dir/uploads`.
pub(crate) async fn store_bytes(dir: &FsPath, bytes: &[u8]) -> std::io::Result<String> {
    crate::media::store_in(&dir.join(FOLDER), bytes).await
}

/// The top-level file field `name` of a definition.
fn file_field<'a>(
    def: &'a nara_core::service_def::Definition,
    name: &str,
) -> Option<(usize, &'a Field)> {
    def.pages.iter().enumerate().find_map(|(i, p)| {
        p.fields
            .iter()
            .find(|f| f.id.get_ref() == name && f.kind.get_ref() == "file")
            .map(|f| (i + 1, f))
    })
}

/// A file form's parts: its `csrf` token and its `file` (empty when none
/// was sent); a body past the route's limit is 413.
pub async fn file_form(
    ctx: &PageCtx,
    mut multipart: Multipart,
) -> Result<(String, Vec<u8>), PageError> {
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
    Ok((csrf, bytes))
}

/// `POST /applications/{reference}/files/{field}` (multipart: `csrf`,
/// `file`): checks, scans and stores the file, and sets the field's answer
/// to its content address; back to the field's page either way.
pub async fn upload(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path((reference, name)): Path<(String, String)>,
    multipart: Multipart,
) -> Result<Response, PageError> {
    let (csrf, bytes) = file_form(&ctx, multipart).await?;
    if !csrf_ok(&ctx.caller, &csrf) {
        return Ok(csrf_refused(ctx.lang));
    }
    let (app, def) = crate::citizen::portal::owned(&ctx, &state, &who, &reference).await?;
    if app.state != "draft" {
        return Err(PageError::not_found(ctx.lang));
    }
    let (page, field) = file_field(&def, &name).ok_or_else(|| PageError::not_found(ctx.lang))?;
    let refused = match check(&bytes, field) {
        Err(r) => Some(r),
        Ok(media) => match scan(&bytes).await {
            Scan::Infected(what) => Some(Refused::Infected(what)),
            scanned => {
                let hash = store_bytes(&state.config.data_dir, &bytes)
                    .await
                    .map_err(|_| PageError::internal(ctx.lang))?;
                let mut answers = crate::citizen::applying::answers_of(&app);
                answers.insert(name.clone(), Value::String(hash.clone()));
                let upload = Upload {
                    application_id: app.id,
                    field: name.clone(),
                    hash,
                    media_type: media.to_owned(),
                    size: bytes.len() as i64,
                    scan: if scanned == Scan::Clean {
                        "clean"
                    } else {
                        "not_scanned"
                    }
                    .to_owned(),
                    uploaded_at: nara_core::Timestamp::now().0,
                };
                let text = Value::Object(answers).to_string();
                if !state
                    .store
                    .attach_upload(&upload, who.account_id, &text)
                    .await
                    .map_err(store_failed(ctx.lang))?
                {
                    return Err(PageError::not_found(ctx.lang));
                }
                None
            }
        },
    };
    match refused {
        None => {
            Ok(Redirect::to(&format!("/applications/{reference}/pages/{page}")).into_response())
        }
        Some(r) => {
            if let Refused::Infected(what) = &r {
                tracing::warn!(%reference, field = %name, %what, "an infected upload was refused");
            }
            let message = crate::web::i18n::Tr(ctx.lang).s(r.key()).to_owned();
            crate::citizen::portal::form_view(
                &ctx,
                &state,
                &app,
                &def,
                page,
                &crate::citizen::applying::answers_of(&app),
                vec![(name, message)],
                &who,
            )
            .await
        }
    }
}

/// Serves a stored file as an attachment that cannot run as a page.
async fn serve(
    state: &AppState,
    ctx: &PageCtx,
    application_id: i64,
    field: &str,
) -> Result<Response, PageError> {
    let uploads = state
        .store
        .uploads_of(application_id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let u = uploads
        .iter()
        .find(|u| u.field == field)
        .ok_or_else(|| PageError::not_found(ctx.lang))?;
    let path =
        path_of(&state.config.data_dir, &u.hash).ok_or_else(|| PageError::not_found(ctx.lang))?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| PageError::not_found(ctx.lang))?;
    let ext = match u.media_type.as_str() {
        "application/pdf" => "pdf",
        "image/png" => "png",
        _ => "jpg",
    };
    Ok((
        [
            (header::CONTENT_TYPE, u.media_type.clone()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.{ext}\"", u.field),
            ),
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

/// `GET /applications/{reference}/files/{field}`: the applicant's own file.
pub async fn download(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    Path((reference, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (app, _) = crate::citizen::portal::owned(&ctx, &state, &who, &reference).await?;
    serve(&state, &ctx, app.id, &name).await
}

/// `GET /cases/{reference}/files/{field}`: an official of the agency, when
/// one of the case's next steps shows the field.
pub async fn case_file(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    crate::identity::request::ClientAddress(address): crate::identity::request::ClientAddress,
    Path((reference, name)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let (app, shown) =
        crate::officials::cases::shown_fields(&ctx, &state, &who, &reference).await?;
    if !shown.contains(&name) {
        return Err(PageError::not_found(ctx.lang));
    }
    crate::secops::watch::personal_data_read(
        &state,
        &who,
        &address,
        &format!("case {reference} file {name}"),
    )
    .await;
    serve(&state, &ctx, app.id, &name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(accept: &[&str], max_kib: u32) -> Field {
        let accept = accept
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let src = format!(
            "code = \"t\"\nversion = 1\nagency = \"KR/GOV/MOIS\"\ntitle = {{ en = \"t\", es = \"t\", ko = \"t\" }}\n\
             summary = {{ en = \"t\", es = \"t\", ko = \"t\" }}\n[[pages]]\nid = \"p\"\ntitle = {{ en = \"t\", es = \"t\", ko = \"t\" }}\n\
             [[pages.fields]]\nid = \"f\"\ntype = \"file\"\nlabel = {{ en = \"t\", es = \"t\", ko = \"t\" }}\naccept = [{accept}]\nmax_kib = {max_kib}\n\
             [workflow]\nsla_working_days = 1\nstates = [\"submitted\", \"approved\"]\ntransitions = [{{ from = \"submitted\", to = \"approved\", by = \"official\" }}]\n"
        );
        let def = nara_core::service_def::check(&src).expect("a valid test definition");
        def.pages[0].fields[0].clone()
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn type_is_read_from_the_content() {
        let f = field(&["application/pdf", "image/png"], 100);
        assert_eq!(check(b"%PDF-1.7\n%%EOF", &f), Ok("application/pdf"));
        assert_eq!(check(&png(800, 600), &f), Ok("image/png"));
        // A script named lease.pdf is still a script.
        assert_eq!(
            check(b"<script>alert(1)</script>", &f),
            Err(Refused::NotAccepted("application/octet-stream"))
        );
        assert_eq!(
            check(b"MZ\x90\0", &f),
            Err(Refused::NotAccepted("application/x-executable"))
        );
        assert_eq!(check(b"", &f), Err(Refused::Empty));
    }

    #[test]
    fn oversize_and_bombs_are_refused() {
        let f = field(&["application/pdf", "image/png", "image/jpeg"], 1);
        let mut big = b"%PDF-1.7\n".to_vec();
        big.resize(1025, b' ');
        assert_eq!(check(&big, &f), Err(Refused::TooLarge { max_kib: 1 }));
        // 100,000 × 100,000 pixels in 33 bytes.
        assert_eq!(check(&png(100_000, 100_000), &f), Err(Refused::Bomb));
        assert_eq!(check(&png(0, 10), &f), Err(Refused::Bomb));
        // A JPEG claiming 65,535 × 65,535.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x03, 0, 0, 0, 0,
        ];
        assert_eq!(check(&jpeg, &f), Err(Refused::Bomb));
        // Archives are never a document: a zip bomb is refused by its type.
        assert_eq!(
            check(b"PK\x03\x04\x14\0\0\0\x08\0", &f),
            Err(Refused::NotAccepted("application/zip"))
        );
    }

    proptest::proptest! {
        /// Whatever the bytes, the check answers (no panic), and what it
        /// accepts is of an accepted type and within the size.
        #[test]
        fn any_bytes_get_an_answer(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let f = field(&["application/pdf", "image/png", "image/jpeg"], 1);
            if let Ok(media) = check(&bytes, &f) {
                proptest::prop_assert!(["application/pdf", "image/png", "image/jpeg"].contains(&media));
                proptest::prop_assert!(bytes.len() <= 1024);
            }
        }
    }
}
