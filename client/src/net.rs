//! Opening a connection by hand for the WebSocket (the HTTP side leaves
//! this to ureq): name resolution and connect bounded by the connect
//! timeout, optional TLS with rustls, and io errors mapped to typed errors.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::error::ClientError;

/// A plain or TLS connection.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Sets the socket's read timeout; zero is raised to one millisecond
    /// (zero would mean "never").
    pub(crate) fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        self.tcp()
            .set_read_timeout(Some(d.max(Duration::from_millis(1))))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Resolves and connects within `connect_timeout` (trying each address in
/// turn), then sets up TLS if asked. Reads and writes then time out after
/// `idle_timeout`.
pub(crate) fn connect(
    host: &str,
    port: u16,
    tls: bool,
    connect_timeout: Duration,
    idle_timeout: Duration,
) -> Result<Stream, ClientError> {
    let deadline = Instant::now() + connect_timeout;
    let where_ = format!("{host}:{port}");
    let addrs = resolve(host, port, connect_timeout)?;
    let mut last: Option<ClientError> = None;
    let mut tcp = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = Some(map_connect(&where_, connect_timeout, e)),
        }
    }
    let tcp = tcp.ok_or_else(|| {
        last.unwrap_or_else(|| {
            ClientError::Unreachable(format!(
                "{where_} did not answer within {} s",
                connect_timeout.as_secs_f32()
            ))
        })
    })?;
    let setup = |e: io::Error| map_io(&where_, e);
    tcp.set_nodelay(true).map_err(setup)?;
    tcp.set_read_timeout(Some(idle_timeout.max(Duration::from_millis(1))))
        .map_err(setup)?;
    tcp.set_write_timeout(Some(idle_timeout.max(Duration::from_millis(1))))
        .map_err(setup)?;
    if !tls {
        return Ok(Stream::Plain(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        ClientError::Tls(format!("{host} is not a name a certificate can carry: {e}"))
    })?;
    let conn = rustls::ClientConnection::new(tls_config(), name)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    // Finish the handshake now, within the connect timeout, so a TLS
    // failure is reported as one and not as a broken WebSocket.
    let left = deadline.saturating_duration_since(Instant::now());
    stream
        .sock
        .set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .map_err(setup)?;
    while stream.conn.is_handshaking() {
        match stream.conn.complete_io(&mut stream.sock) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ClientError::Unreachable(format!(
                    "{where_}: the secure connection was not set up within {} s",
                    connect_timeout.as_secs_f32()
                )))
            }
            Err(e) => return Err(map_io(&where_, e)),
        }
    }
    stream
        .sock
        .set_read_timeout(Some(idle_timeout.max(Duration::from_millis(1))))
        .map_err(setup)?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// The trust roots of browsers (Mozilla's list, compiled in): a phone's
/// own store is not consulted, so behaviour is the same on every device.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Resolves a host name on a helper thread, so a hanging resolver (a phone
/// with no signal) is bounded by `timeout` like the rest of connecting.
fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, ClientError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("tpsync-resolve".into())
        .spawn(move || {
            let found = (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>());
            let _ = tx.send(found);
        })
        .map_err(|e| ClientError::io("cannot start a thread to look up the server", e))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(_) => Err(ClientError::Unreachable(format!(
            "the name {host} does not resolve"
        ))),
        Err(_) => Err(ClientError::Unreachable(format!(
            "the name {host} did not resolve within {} s",
            timeout.as_secs_f32()
        ))),
    }
}

fn map_connect(where_: &str, timeout: Duration, e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ClientError::Unreachable(format!(
            "{where_} did not answer within {} s",
            timeout.as_secs_f32()
        )),
        _ => map_io(where_, e),
    }
}

/// Maps an io error on a connection to `where_` to a typed error.
pub(crate) fn map_io(where_: &str, e: io::Error) -> ClientError {
    use io::ErrorKind as K;
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return ClientError::Tls(tls.to_string());
    }
    // A name that does not resolve reaches us as an uncategorised I/O
    // error from getaddrinfo (std gives it no kind of its own); nothing was
    // sent, so it is "unreachable", not a cut connection.
    if e.to_string()
        .contains("failed to lookup address information")
    {
        return ClientError::Unreachable(format!(
            "the name in {where_} does not resolve ({e}); check the server address and the network"
        ));
    }
    match e.kind() {
        K::ConnectionRefused => ClientError::Unreachable(format!(
            "{where_} refused the connection; is the server running?"
        )),
        K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown | K::AddrNotAvailable => {
            ClientError::Unreachable(format!("no network route to {where_} ({e})"))
        }
        K::TimedOut | K::WouldBlock => ClientError::Timeout,
        _ => ClientError::ConnectionLost(e.to_string()),
    }
}
