//! The citizen's inbox: a notification per change to her applications, the
//! e-mail address notices go to, marking them read.

use crate::AppState;
use crate::citizen::portal::CsrfOnly;
use crate::identity::auth::Principal;
use crate::web::csrf::CsrfForm;
use crate::web::when;
use crate::web::{Layout, PageCtx, PageError, render, store_failed};
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};

pub struct InboxItem {
    pub when: String,
    pub reference: String,
    pub service: String,
    pub text: String,
    pub unread: bool,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    layout: Layout,
    items: Vec<InboxItem>,
    unread: usize,
    csrf: String,
    /// The address notifications are also emailed to, and whether this
    /// node sends email at all.
    email: String,
    mail_enabled: bool,
    error: Option<String>,
}

/// `GET /my/inbox`: what happened to the citizen's applications, newest first.
pub async fn inbox(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
) -> Result<Response, PageError> {
    inbox_view(&ctx, &state, &who, None).await
}

async fn inbox_view(
    ctx: &PageCtx,
    state: &AppState,
    who: &Principal,
    error: Option<String>,
) -> Result<Response, PageError> {
    let notes = state
        .store
        .notifications_of(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?;
    let defs = state
        .store
        .latest_definitions()
        .await
        .map_err(store_failed(ctx.lang))?;
    let tr = ctx.tr();
    let items: Vec<InboxItem> = notes
        .into_iter()
        .map(|n| {
            let text = match (n.kind.as_str(), n.state.as_str()) {
                ("document", _) => tr.s("inbox.document").to_owned(),
                (_, "submitted") => tr.s("inbox.received").to_owned(),
                (_, "approved") => tr.s("inbox.approved").to_owned(),
                (_, "rejected") => tr.s("inbox.rejected").to_owned(),
                (_, "more_info") => tr.s("inbox.more_info").to_owned(),
                (_, other) => format!("{} {other}", tr.s("inbox.moved")),
            };
            InboxItem {
                when: when(n.at),
                service: state.definitions.title(&defs, &n.service_code, ctx.lang),
                reference: n.reference,
                text,
                unread: n.read_at.is_none(),
            }
        })
        .collect();
    let email = state
        .store
        .email_of(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?
        .unwrap_or_default();
    let page = InboxPage {
        layout: ctx.layout(tr.s("inbox.title"), "inbox"),
        unread: items.iter().filter(|i| i.unread).count(),
        items,
        csrf: who.csrf().unwrap_or_default().to_owned(),
        email,
        mail_enabled: state.config.smtp_url.is_some(),
        error: error.clone(),
    };
    Ok((crate::web::status_for(&error), render(&page)).into_response())
}

#[derive(serde::Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
}

/// `POST /my/inbox/email`: the address notifications are also emailed to
/// (empty: none).
pub async fn inbox_email(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(form): CsrfForm<EmailForm>,
) -> Result<Response, PageError> {
    let Ok(email) = super::mailer::given_address(&form.email) else {
        let error = Some(ctx.tr().s("inbox.bad_email").into());
        return inbox_view(&ctx, &state, &who, error).await;
    };
    state
        .store
        .set_email(who.account_id, email)
        .await
        .map_err(store_failed(ctx.lang))?;
    Ok(Redirect::to("/my/inbox").into_response())
}

/// `POST /my/inbox/read`.
pub async fn inbox_read(
    ctx: PageCtx,
    State(state): State<AppState>,
    who: Principal,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Result<Response, PageError> {
    state
        .store
        .mark_notifications_read(who.account_id)
        .await
        .map_err(store_failed(ctx.lang))?;
    Ok(Redirect::to("/my/inbox").into_response())
}
