//! Opening one SMTP connection: TCP (with TCP_NODELAY), TLS from the first
//! byte or by STARTTLS, EHLO, AUTH — each step in the conversation log.
//!
//! We open the socket ourselves rather than let lettre do it: lettre leaves
//! Nagle's algorithm on and writes a message and its final `.` separately,
//! so every message waited for the server's delayed ACK (about 40 ms).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::commands::Ehlo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::conversation::Conversation;
use super::settings::{Login, Security, Settings};
use crate::oauth::AccessToken;

/// Why a connection could not be opened or used, before classification.
#[derive(Debug)]
pub(super) enum Failure {
    /// The server answered with an error, or the SMTP conversation broke.
    Smtp(SmtpError),
    /// The server refused AUTH; its answer is repeated only through the
    /// login's `blank` (it may echo the secret).
    Login(SmtpError, Login),
    /// The first command on a reused connection failed without a reply (or
    /// with `421`): the server closed it while it was idle.
    Stale(SmtpError),
    /// TCP or implicit TLS failed before any SMTP was spoken.
    Connect(String),
    /// This message cannot go through this server as it is.
    Refused(String),
    /// The attempt took longer than the transport's timeout.
    TimedOut,
}

/// One open, authenticated connection and its log.
pub(super) struct Connection {
    pub smtp: AsyncSmtpConnection,
    pub log: Conversation,
    /// The XOAUTH2 token it authenticated with, if any.
    pub token: Option<AccessToken>,
    /// Whether commands go grouped (the server offers PIPELINING, RFC 2920).
    pub pipelining: bool,
    /// Left in the middle of a message (the server waits for its end):
    /// closed without QUIT, which would be taken as part of the message.
    pub in_data: bool,
}

/// Opens a connection to the server of `settings`, authenticated with
/// `token` (XOAUTH2) or the DSN's password, if any.
pub(super) async fn open(
    settings: &Settings,
    log: Conversation,
    token: Option<&AccessToken>,
) -> Result<Connection, Failure> {
    let tcp = tcp(settings, &log).await?;
    let stream: Box<dyn AsyncTokioStream> = match &settings.security {
        Security::Implicit { config, name } => {
            let tls = TlsConnector::from(config.clone())
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| {
                    log.note(format!("TLS handshake failed: {e}"));
                    Failure::Connect(format!(
                        "TLS handshake with {} failed: {e}",
                        settings.server
                    ))
                })?;
            log.note(tls_summary(&tls));
            Box::new(Tls(tls))
        }
        Security::Plain | Security::StartTls { .. } => Box::new(tcp),
    };
    let stream = Box::new(Bounded::new(stream));
    let mut smtp = AsyncSmtpConnection::connect_with_transport(stream, &settings.hello)
        .await
        .inspect_err(|e| log.failed(e))
        .map_err(Failure::Smtp)?;
    log.note(format!(
        "greeting received; EHLO {}: {}",
        settings.hello,
        smtp.server_info()
    ));
    let upgraded = starttls(settings, &log, &mut smtp).await?;
    let pipelining = settings.pipelining && offers_pipelining(settings, &log, &mut smtp).await?;
    if let Some(login) = login(settings, token) {
        in_clear_only_here(settings, upgraded).map_err(|why| {
            log.note(&why);
            Failure::Connect(why)
        })?;
        let offered = smtp.server_info().get_auth_mechanism(&login.mechanisms);
        let name = offered.map_or_else(|| "(none in common)".to_owned(), |m| m.to_string());
        log.sent(format!("AUTH {name} [redacted]"));
        let reply = smtp.auth(&login.mechanisms, &login.credentials).await;
        log.answer_blanked(&reply, |text| login.blank(text));
        if let Err(e) = reply {
            return Err(Failure::Login(e, login));
        }
    }
    Ok(Connection {
        smtp,
        log,
        token: token.cloned(),
        pipelining,
        in_data: false,
    })
}

/// Whether the server offers PIPELINING. lettre keeps only the extensions
/// it uses, so EHLO is sent once more for the whole list, before AUTH (a
/// repeated EHLO resets the session, as RSET does). A server that refuses
/// it gets its commands one by one.
async fn offers_pipelining(
    settings: &Settings,
    log: &Conversation,
    smtp: &mut AsyncSmtpConnection,
) -> Result<bool, Failure> {
    log.sent(format_args!("EHLO {}", settings.hello));
    let reply = smtp.command(Ehlo::new(settings.hello.clone())).await;
    log.answer(&reply);
    match reply {
        Ok(reply) => Ok(reply.message().skip(1).any(|line| {
            line.split_ascii_whitespace()
                .next()
                .is_some_and(|keyword| keyword.eq_ignore_ascii_case("PIPELINING"))
        })),
        Err(e) if e.status().is_some() => Ok(false),
        Err(e) => Err(Failure::Smtp(e)),
    }
}

/// The first address of the server that accepts a TCP connection.
async fn tcp(settings: &Settings, log: &Conversation) -> Result<TcpStream, Failure> {
    let failed = |e: &io::Error| {
        log.note(format!("connection failed: {e}"));
        Failure::Connect(format!("connection to {} failed: {e}", settings.server))
    };
    let addresses = tokio::net::lookup_host((settings.host.as_str(), settings.port))
        .await
        .map_err(|e| failed(&e))?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // Without it every message waits for the server's delayed ACK.
                stream.set_nodelay(true).map_err(|e| failed(&e))?;
                log.note(format!("connected to {address}"));
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(failed(&last))
}

/// Credentials (a password, an XOAUTH2 token) cross an unencrypted
/// connection only to this machine, or when the DSN says `tls=none`: with
/// `tls=opportunistic`, anyone on the path could strike STARTTLS from the
/// server's answer and read them.
fn in_clear_only_here(settings: &Settings, upgraded: bool) -> Result<(), String> {
    match &settings.security {
        Security::StartTls { .. } if !upgraded && !super::settings::is_loopback(&settings.host) => {
            Err(format!(
                "{} offers no STARTTLS: the credentials are not sent unencrypted to another host \
                 (tls=none if the link is trusted)",
                settings.server
            ))
        }
        _ => Ok(()),
    }
}

/// STARTTLS when the settings ask for it (or allow it and the server
/// offers it); whether the connection is now encrypted by it.
async fn starttls(
    settings: &Settings,
    log: &Conversation,
    smtp: &mut AsyncSmtpConnection,
) -> Result<bool, Failure> {
    let Security::StartTls { params, required } = &settings.security else {
        return Ok(false);
    };
    if !required && !smtp.can_starttls() {
        log.note("the server offers no STARTTLS; going on unencrypted (tls=opportunistic)");
        return Ok(false);
    }
    log.sent("STARTTLS");
    match smtp.starttls(params.clone(), &settings.hello).await {
        Ok(()) => {
            log.note(format!(
                "TLS established; EHLO {} again: {}",
                settings.hello,
                smtp.server_info()
            ));
            Ok(true)
        }
        Err(e) => {
            log.failed(&e);
            Err(Failure::Smtp(e))
        }
    }
}

/// The credentials to authenticate with, and the mechanisms to offer.
fn login(settings: &Settings, token: Option<&AccessToken>) -> Option<Login> {
    match (&settings.xoauth2, token) {
        (Some((user, _)), Some(token)) => {
            Some(Login::new(user, token.secret(), vec![Mechanism::Xoauth2]))
        }
        _ => settings.login.clone(),
    }
}

fn tls_summary(tls: &TlsStream<TcpStream>) -> String {
    let (_, session) = tls.get_ref();
    let version = session
        .protocol_version()
        .map_or_else(|| "?".to_owned(), |v| format!("{v:?}"));
    let suite = session
        .negotiated_cipher_suite()
        .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite()));
    format!("TLS established ({version}, {suite})")
}

/// The most the server may send between two writes of ours. A reply, or
/// the replies to a group of pipelined commands, is far smaller. lettre
/// refuses a reply line over 1,000 bytes and a reply over 100,000, but only
/// once the line has ended: a server that never sends a line end would
/// make it buffer without bound (gigabytes in seconds over a fast link).
pub(super) const READ_BUDGET: usize = 1 << 20;

/// A connection's stream that fails a read once the server has sent more
/// than [`READ_BUDGET`] bytes since our last write. Below TLS when lettre
/// starts it with STARTTLS: it then counts TLS records, which is as good.
#[derive(Debug)]
struct Bounded {
    inner: Box<dyn AsyncTokioStream>,
    /// Bytes read since our last write.
    unanswered: usize,
}

impl Bounded {
    fn new(inner: Box<dyn AsyncTokioStream>) -> Self {
        Bounded {
            inner,
            unanswered: 0,
        }
    }
}

impl AsyncTokioStream for Bounded {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

impl AsyncRead for Bounded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            this.unanswered += buf.filled().len() - before;
            if this.unanswered > READ_BUDGET {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the server sent more than {} KiB without waiting for a command",
                        READ_BUDGET / 1024
                    ),
                )));
            }
        }
        read
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.unanswered = 0;
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Implicit TLS over our own TCP socket, in the form lettre takes.
struct Tls(TlsStream<TcpStream>);

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tls").field(&self.0.get_ref().0).finish()
    }
}

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Dsn;

    fn settings_for(port: u16) -> Settings {
        let dsn = Dsn::parse(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
        super::super::settings::from_dsn(&dsn).unwrap()
    }

    #[test]
    fn credentials_cross_an_unencrypted_link_only_to_this_machine_or_by_choice() {
        let settings =
            |dsn: &str| super::super::settings::from_dsn(&Dsn::parse(dsn).unwrap()).unwrap();
        let remote = settings("smtp://u:p@relay.example:587?tls=opportunistic");
        let refused = in_clear_only_here(&remote, false).unwrap_err();
        assert!(
            refused.contains("STARTTLS") && !refused.contains(":p@"),
            "{refused}"
        );
        assert!(in_clear_only_here(&remote, true).is_ok(), "after STARTTLS");
        assert!(
            in_clear_only_here(&settings("smtp://u:p@relay.example:25?tls=none"), false).is_ok()
        );
        assert!(in_clear_only_here(&settings("smtp://u:p@127.0.0.1:25"), false).is_ok());
        assert!(
            in_clear_only_here(
                &settings("smtp://u:p@localhost:25?tls=opportunistic"),
                false
            )
            .is_ok()
        );
    }

    /// A server that greets with `greeting`, then sends `then` (if any) again
    /// and again without reading, until the client goes away. Returns its
    /// port and how many bytes it managed to send.
    async fn flooding_server(
        greeting: &'static [u8],
        then: &'static [u8],
    ) -> (u16, tokio::task::JoinHandle<usize>) {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut sent = 0;
            if socket.write_all(greeting).await.is_err() {
                return sent;
            }
            sent += greeting.len();
            while !then.is_empty() && socket.write_all(then).await.is_ok() {
                sent += then.len();
            }
            sent
        });
        (port, server)
    }

    #[tokio::test]
    async fn a_greeting_that_never_ends_its_line_is_refused_within_the_budget() {
        static CHUNK: [u8; 65536] = [b'A'; 65536];
        let (port, server) = flooding_server(b"220", &CHUNK).await;
        let log = Conversation::new("test".into(), 1, false);
        let opened = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            open(&settings_for(port), log, None),
        )
        .await
        .expect("refused before the timeout");
        let Err(Failure::Smtp(error)) = opened else {
            panic!("expected an SMTP failure");
        };
        assert!(
            format!("{error:?}").contains("without waiting for a command"),
            "{error:?}"
        );
        let sent = server.await.unwrap();
        // What the server got into the socket before it saw the close: the
        // budget, and what the kernel's buffers held.
        assert!(sent < READ_BUDGET * 16, "{sent} bytes sent");
    }

    #[tokio::test]
    async fn a_long_ehlo_reply_is_within_the_budget() {
        // Some servers list many extensions; each line is short.
        let ehlo: String = (0..500)
            .map(|i| format!("250-X-EXTENSION-{i:05} with some words after it\r\n"))
            .collect();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            write.write_all(b"220 ready\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let answer = if line.starts_with("EHLO") {
                    format!("{ehlo}250 SIZE 1000000\r\n")
                } else {
                    "250 OK\r\n".to_owned()
                };
                if write.write_all(answer.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let log = Conversation::new("test".into(), 1, false);
        let opened = open(&settings_for(port), log, None).await;
        assert!(opened.is_ok(), "{:?}", opened.err());
    }

    #[tokio::test]
    async fn sockets_have_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dsn = Dsn::parse(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
        let settings = super::super::settings::from_dsn(&dsn).unwrap();
        let log = Conversation::new("test".into(), 1, false);
        let stream = tcp(&settings, &log).await.unwrap();
        assert!(stream.nodelay().unwrap());
    }
}
