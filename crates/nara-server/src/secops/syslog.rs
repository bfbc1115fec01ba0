//! Security events from agency systems over syslog: RFC 5424 and the older
//! RFC 3164, over UDP (RFC 5426: one message a datagram) and TCP (RFC 6587:
//! octet-counted or newline-ended frames), parsed by `syslog_loose`. Only
//! senders in `syslog_senders` are heard — syslog carries no credential, so
//! the network is the credential. Each message becomes one security event
//! (kind `system.…`, as for JSON lines), stored in batches and evaluated by
//! the same detection rules. A malformed, oversized or non-UTF-8 message is
//! counted and skipped, never a crash nor a stalled listener; TCP senders
//! are slowed, not dropped, when the store falls behind.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use nara_store::secops::ReportedEvent;
use syslog_loose::{Message, Variant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::intake::kind_ok;
use crate::AppState;

/// The longest message heard (RFC 5425 asks receivers to take 2,048
/// octets and allows more; 8 KiB covers every agency system we know).
pub const MAX_MESSAGE: usize = 8 * 1024;
/// Open TCP connections at most.
const MAX_CONNECTIONS: usize = 256;
/// A TCP sender silent this long is disconnected.
const IDLE: Duration = Duration::from_secs(120);
/// Events waiting for the store at most; beyond it UDP drops (counted)
/// and TCP waits.
const QUEUE: usize = 20_000;
/// Events stored together at most.
const BATCH: usize = 1_000;

/// Why a message was not turned into an event.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("longer than {MAX_MESSAGE} octets")]
    TooLong,
    #[error("not UTF-8")]
    NotUtf8,
    #[error("not a syslog message (RFC 5424 or RFC 3164)")]
    NotSyslog,
    #[error("empty")]
    Empty,
}

/// One syslog message as a security event from `sender`. `now_ms` stands in
/// for a missing time, and for one more than five minutes ahead (a sender's
/// clock is not trusted to reorder the stream).
pub fn event(raw: &[u8], sender: IpAddr, now_ms: i64) -> Result<ReportedEvent, Unusable> {
    if raw.len() > MAX_MESSAGE {
        return Err(Unusable::TooLong);
    }
    let text = std::str::from_utf8(raw).map_err(|_| Unusable::NotUtf8)?;
    let text = text.trim_end_matches(['\n', '\r', '\0']);
    if text.trim().is_empty() {
        return Err(Unusable::Empty);
    }
    // RFC 3164 dates have no year: this year, unless the month is still to
    // come (December's message read in January is last year's).
    let today = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let (year, month) = (
        chrono::Datelike::year(&today),
        chrono::Datelike::month(&today),
    );
    let m: Message<&str> = syslog_loose::parse_message_with_year_exact(
        text,
        |(m, ..)| if m > month { year - 1 } else { year },
        Variant::Either,
    )
    .map_err(|_| Unusable::NotSyslog)?;
    // Without a priority it is not syslog, whatever the parser made of it.
    if m.facility.is_none() || m.severity.is_none() {
        return Err(Unusable::NotSyslog);
    }
    let at = m
        .timestamp
        .map(|t| t.timestamp_millis())
        .filter(|ms| *ms <= now_ms + 5 * 60_000)
        .unwrap_or(now_ms);
    let param = |names: &[&str]| -> Option<String> {
        m.structured_data.iter().find_map(|e| {
            e.params
                .iter()
                .find(|(k, _)| names.contains(k))
                .map(|(_, v)| (*v).to_owned())
        })
    };
    let kind = m
        .msgid
        .filter(|id| kind_ok(id))
        .map(str::to_owned)
        .or_else(|| {
            m.appname
                .map(|a| a.to_ascii_lowercase())
                .filter(|a| a.len() <= 56 && kind_ok(a))
                .map(|a| format!("syslog.{a}"))
        })
        .unwrap_or_else(|| "syslog".into());
    let user: String = param(&["user", "usr", "suser"])
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect();
    let address = param(&["source_ip", "src", "srcip"])
        .and_then(|a| a.parse::<IpAddr>().ok())
        .map(|a| a.to_string())
        .unwrap_or_default();
    // The sender chooses the host name too: no control characters from it either.
    let host: String = m
        .hostname
        .unwrap_or("-")
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect();
    let severity = m.severity.map_or("-", |s| s.as_str());
    let message: String = m
        .msg
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1000)
        .collect();
    Ok(ReportedEvent {
        at,
        kind: format!("system.{kind}"),
        username: user,
        address,
        detail: format!("syslog from {sender} host {host} {severity}: {message}"),
    })
}

/// The syslog listeners (UDP and TCP on `addr`) and the writer that stores
/// what they hear, until aborted.
pub struct Listeners {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
}

impl Listeners {
    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds UDP and TCP on `addr` (a port of 0: one free port for both is
/// chosen) and starts listening. A port already taken is an error at start,
/// not a silent deaf node.
pub async fn listen(state: AppState, addr: SocketAddr) -> std::io::Result<Listeners> {
    let tcp = TcpListener::bind(addr).await?;
    let tcp_addr = tcp.local_addr()?;
    let udp = UdpSocket::bind(SocketAddr::new(addr.ip(), tcp_addr.port())).await?;
    let udp_addr = udp.local_addr()?;
    let (tx, rx) = mpsc::channel::<ReportedEvent>(QUEUE);
    let writer = tokio::spawn(store_events(state.clone(), rx));
    let senders: Arc<[ipnet::IpNet]> = state.config.syslog_senders.clone().into();
    let udp_task = tokio::spawn(serve_udp(state.clone(), udp, tx.clone(), senders.clone()));
    let tcp_task = tokio::spawn(serve_tcp(state, tcp, tx, senders));
    tracing::info!(%udp_addr, %tcp_addr, "syslog: listening");
    Ok(Listeners {
        tasks: vec![writer, udp_task, tcp_task],
        udp: udp_addr,
        tcp: tcp_addr,
    })
}

fn heard(senders: &[ipnet::IpNet], ip: IpAddr) -> bool {
    senders.iter().any(|n| n.contains(&ip))
}

async fn serve_udp(
    state: AppState,
    socket: UdpSocket,
    tx: mpsc::Sender<ReportedEvent>,
    senders: Arc<[ipnet::IpNet]>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "syslog: receiving over UDP");
                continue;
            }
        };
        if !heard(&senders, from.ip()) {
            state.metrics.syslog("udp", "refused_sender");
            continue;
        }
        match event(&buf[..n], from.ip(), nara_core::Timestamp::now().0) {
            // UDP has no acknowledgement to keep: when the queue is full the
            // message is dropped and counted, and the listener stays live.
            Ok(e) => {
                if tx.try_send(e).is_err() {
                    state.metrics.syslog("udp", "dropped");
                }
            }
            Err(_) => state.metrics.syslog("udp", "malformed"),
        }
    }
}

async fn serve_tcp(
    state: AppState,
    listener: TcpListener,
    tx: mpsc::Sender<ReportedEvent>,
    senders: Arc<[ipnet::IpNet]>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "syslog: accepting over TCP");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !heard(&senders, from.ip()) {
            state.metrics.syslog("tcp", "refused_sender");
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Full: this connection is closed at once; the others go on.
            state.metrics.syslog("tcp", "refused_sender");
            continue;
        };
        let (state, tx) = (state.clone(), tx.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = read_stream(&state, stream, from.ip(), &tx).await {
                tracing::debug!(error = %e, %from, "syslog: TCP sender gone");
            }
        });
    }
}

/// Reads frames from one TCP sender: RFC 6587 octet counting (`LEN SP
/// MSG`) when a frame starts with a digit, else a line ended by LF.
async fn read_stream(
    state: &AppState,
    stream: TcpStream,
    sender: IpAddr,
    tx: &mpsc::Sender<ReportedEvent>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut frame = Vec::with_capacity(1024);
    loop {
        frame.clear();
        let first = match tokio::time::timeout(IDLE, reader.fill_buf()).await {
            Err(_) => return Ok(()),
            Ok(r) => match r?.first() {
                None => return Ok(()),
                Some(b) => *b,
            },
        };
        if first.is_ascii_digit() {
            // Octet counting: the length, one space, that many octets.
            let mut len = Vec::with_capacity(6);
            (&mut reader).take(7).read_until(b' ', &mut len).await?;
            let count = std::str::from_utf8(&len)
                .ok()
                .and_then(|t| t.strip_suffix(' '))
                .and_then(|t| t.parse::<usize>().ok());
            let Some(count) = count.filter(|c| (1..=MAX_MESSAGE).contains(c)) else {
                // No way to find the next frame in a broken count: hang up.
                state.metrics.syslog("tcp", "malformed");
                return Ok(());
            };
            frame.resize(count, 0);
            reader.read_exact(&mut frame).await?;
        } else {
            let read = (&mut reader)
                .take(MAX_MESSAGE as u64 + 1)
                .read_until(b'\n', &mut frame)
                .await?;
            if read == 0 {
                return Ok(());
            }
            if frame.len() > MAX_MESSAGE && frame.last() != Some(&b'\n') {
                // Skip the rest of an oversized line, then go on.
                state.metrics.syslog("tcp", "malformed");
                let mut rest = Vec::new();
                reader.read_until(b'\n', &mut rest).await?;
                continue;
            }
        }
        match event(&frame, sender, nara_core::Timestamp::now().0) {
            Ok(e) => {
                // TCP can wait: the sender is slowed, nothing is dropped.
                if tx.send(e).await.is_err() {
                    return Ok(());
                }
            }
            Err(Unusable::Empty) => {}
            Err(_) => state.metrics.syslog("tcp", "malformed"),
        }
    }
}

/// Stores queued events in batches (whatever has arrived, up to
/// [`BATCH`]); a failed batch is retried, not lost.
async fn store_events(state: AppState, mut rx: mpsc::Receiver<ReportedEvent>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut wait = Duration::from_millis(100);
        loop {
            match state.store.record_reported_events(&batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, events = batch.len(), "syslog: storing events; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        for _ in 0..batch.len() {
            state.metrics.syslog("any", "stored");
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const SENDER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3));

    #[test]
    fn rfc5424_with_structured_data_and_rfc3164_become_events() {
        let e = event(
            br#"<38>1 2026-12-01T10:00:00.000Z web-01 sso 4242 login.failed [nara@32473 user="kim" src="203.0.113.9"] bad password"#,
            SENDER,
            NOW,
        )
        .unwrap();
        assert_eq!(e.kind, "system.login.failed");
        assert_eq!(e.username, "kim");
        assert_eq!(e.address, "203.0.113.9");
        assert_eq!(e.at, 1_796_119_200_000);
        assert!(
            e.detail
                .starts_with("syslog from 10.1.2.3 host web-01 info: bad password"),
            "{}",
            e.detail
        );

        let e = event(
            b"<34>Oct 11 22:14:15 mymachine sshd[1234]: Failed password for root from 203.0.113.9 port 22\n",
            SENDER,
            NOW,
        )
        .unwrap();
        assert_eq!(e.kind, "system.syslog.sshd");
        assert!(
            e.detail.contains("Failed password for root"),
            "{}",
            e.detail
        );
    }

    #[test]
    fn unusable_messages_are_named() {
        assert_eq!(
            event(&[b'a'; MAX_MESSAGE + 1], SENDER, NOW),
            Err(Unusable::TooLong)
        );
        assert_eq!(
            event(b"<34>1 \xff\xfe", SENDER, NOW),
            Err(Unusable::NotUtf8)
        );
        assert_eq!(event(b"\n", SENDER, NOW), Err(Unusable::Empty));
        assert_eq!(event(b"hello there", SENDER, NOW), Err(Unusable::NotSyslog));
        // A time far ahead is replaced by the time received.
        let e = event(b"<38>1 2099-01-01T00:00:00Z h app - - - m", SENDER, NOW).unwrap();
        assert_eq!(e.at, NOW);
        // A message id that is not a kind falls back to the app name.
        let e = event(b"<38>1 - h App - MSG!ID - m", SENDER, NOW).unwrap();
        assert_eq!(e.kind, "system.syslog.app");
    }

    proptest::proptest! {
        #[test]
        fn no_message_panics_or_yields_an_unnamespaced_kind(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            prefix in proptest::sample::select(vec!["", "<34>", "<165>1 ", "<13>Oct 11 22:14:15 "]),
        ) {
            let mut bytes = prefix.as_bytes().to_vec();
            bytes.extend(raw);
            if let Ok(e) = event(&bytes, SENDER, NOW) {
                proptest::prop_assert!(e.kind.starts_with("system."));
                proptest::prop_assert!(!e.detail.chars().any(char::is_control));
                proptest::prop_assert!(e.at <= NOW + 5 * 60_000);
            }
        }
    }
}
