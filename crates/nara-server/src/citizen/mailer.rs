//! Emails citizens' notifications, and high and critical alerts to the
//! security analysts on call, through the configured SMTP relay: every two
//! seconds, what is waiting (oldest first) is sent and marked sent; a
//! failure leaves it for the next round. The email names the application
//! and links to it; nothing of the answers or evidence is in it.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use nara_store::applications::Unsent;
use secrecy::ExposeSecret;

use crate::AppState;

/// The subject and text of one notification's email (English and Korean:
/// the account's language is not known when it is sent).
pub fn compose(base: &str, n: &Unsent) -> (String, String) {
    let (en, ko) = match (n.kind.as_str(), n.state.as_str()) {
        ("document", _) => ("your document is ready", "문서가 발급되었습니다"),
        (_, "submitted") => ("received", "접수되었습니다"),
        (_, "approved") => ("approved", "승인되었습니다"),
        (_, "rejected") => ("rejected", "반려되었습니다"),
        (_, "more_info") => (
            "the agency needs more information from you",
            "기관에서 추가 정보를 요청했습니다",
        ),
        _ => ("updated", "진행 상황이 바뀌었습니다"),
    };
    let link = format!("{base}/applications/{}", n.reference);
    (
        format!("nara {}: {en}", n.reference),
        format!(
            "Your application {r} ({s}): {en}.\n{link}\n\n신청 {r} ({s}): {ko}.\n{link}\n",
            r = n.reference,
            s = n.service_code
        ),
    )
}

/// An address given for email that SMTP cannot deliver to.
#[derive(Debug, thiserror::Error)]
#[error("not an email address")]
pub struct NotAnAddress;

/// An address a person gives for email, trimmed: `Ok(None)` when empty (no
/// email), an error when it is not one SMTP can deliver to.
pub fn given_address(text: &str) -> Result<Option<&str>, NotAnAddress> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else if text.len() <= 254 && text.parse::<lettre::Address>().is_ok() {
        Ok(Some(text))
    } else {
        Err(NotAnAddress)
    }
}

/// Starts the mailer when `smtp_url` is configured.
pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    let url = state.config.smtp_url.as_ref()?.expose_secret().to_owned();
    // `smtp://host[:port]`: a relay on the government network, which
    // delivers onward (with TLS) itself.
    let relay = url::Url::parse(&url)
        .ok()
        .filter(|u| u.scheme() == "smtp")
        .and_then(|u| Some((u.host_str()?.to_owned(), u.port().unwrap_or(25))));
    let Some((host, port)) = relay else {
        tracing::error!("smtp_url must be smtp://host[:port]; notifications stay in the inbox");
        return None;
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .timeout(Some(Duration::from_secs(20)))
        .build();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pending = match state.store.unsent_notifications(100).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "reading notifications to email");
                    continue;
                }
            };
            for n in pending {
                let (subject, body) = compose(&state.config.issuer(), &n);
                let message = Message::builder()
                    .from(match state.config.smtp_from.parse() {
                        Ok(f) => f,
                        Err(_) => {
                            tracing::error!("smtp_from is not an address");
                            break;
                        }
                    })
                    .to(match n.email.parse() {
                        Ok(t) => t,
                        Err(_) => {
                            // An address that cannot be used is not retried.
                            let _ = state.store.mark_emailed(n.id).await;
                            continue;
                        }
                    })
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body);
                let Ok(message) = message else { continue };
                match transport.send(message).await {
                    Ok(_) => {
                        if let Err(e) = state.store.mark_emailed(n.id).await {
                            tracing::warn!(error = %e, "marking a notification emailed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the SMTP relay refused; retrying later");
                        break;
                    }
                }
            }
            alert_mail(&state, &transport).await;
        }
    }))
}

/// The subject and text of a high or critical alert's email to an analyst
/// on call: what fired and where to look, nothing of the events themselves.
pub fn compose_alert(base: &str, a: &nara_store::secops::Alert) -> (String, String) {
    (
        format!("nara alert ({}): {}", a.level, a.title),
        format!(
            "A detection rule raised a {level} alert: {title}\nGrouped by: {group}\n{base}/security/alerts#alert-{id}\n\n\
             탐지 규칙이 {level} 경보를 발령했습니다: {title}\n{base}/security/alerts#alert-{id}\n",
            level = a.level,
            title = a.title,
            group = a.group_key,
            id = a.id
        ),
    )
}

/// Emails high and critical alerts to the analysts on call.
async fn alert_mail(state: &AppState, transport: &AsyncSmtpTransport<Tokio1Executor>) {
    let pending = match state.store.unsent_alert_mail(100).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "reading alert emails");
            return;
        }
    };
    let Ok(from) = state.config.smtp_from.parse::<lettre::message::Mailbox>() else {
        tracing::error!("smtp_from is not an address");
        return;
    };
    for (id, email, alert) in pending {
        let Ok(to) = email.parse::<lettre::message::Mailbox>() else {
            let _ = state.store.mark_alert_mailed(id).await;
            continue;
        };
        let (subject, body) = compose_alert(&state.config.issuer(), &alert);
        let Ok(message) = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
        else {
            continue;
        };
        match transport.send(message).await {
            Ok(_) => {
                if let Err(e) = state.store.mark_alert_mailed(id).await {
                    tracing::warn!(error = %e, "marking an alert emailed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the SMTP relay refused an alert; retrying later");
                return;
            }
        }
    }
}
