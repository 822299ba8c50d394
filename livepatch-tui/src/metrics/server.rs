//! A minimal HTTP/1.1 endpoint for Prometheus: `GET /metrics`, one request
//! per connection, then the connection is closed.
//!
//! Each connection runs in its own task, so scrapes can overlap. A slow or
//! broken client costs one task until its timeout. Errors are logged with
//! the peer's address and never stop the server.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::timeout,
};

use super::{Clock, SharedState, render};

/// The path of the metrics. Every other path returns 404.
pub const METRICS_PATH: &str = "/metrics";

/// Content type of the text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Maximum size of a request's head (request line and headers). A scrape
/// sends a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Time a client has to send its request, and then to read the response.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Time, and bytes, a closing connection waits for a client to stop
/// sending before it is closed anyway.
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_DISCARD_BYTES: usize = 64 * 1024;

/// Connections served at once. Further ones wait in the kernel's accept
/// queue.
const MAX_CONNECTIONS: usize = 32;

/// Pause after a failed accept (e.g. out of file descriptors), so that the
/// loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The metrics endpoint, bound and ready to serve.
pub struct Server {
    listener: TcpListener,
    state: SharedState,
    clock: Clock,
}

impl Server {
    /// Binds `address`. Binding is the only step that can fail: call it
    /// before anything slow, so that a wrong address is reported at once.
    pub async fn bind(
        address: SocketAddr,
        state: SharedState,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(address).await.with_context(|| {
            format!(
                "failed to listen for metrics on {address} (is another process using the port?)"
            )
        })?;
        Ok(Self {
            listener,
            state,
            clock,
        })
    }

    /// Returns the address the server listens on, with the bound port when
    /// ADDR requested port 0.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves scrapes until the task is dropped.
    pub async fn serve(self) {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let (stream, peer) = match self.listener.accept().await {
                Ok(connection) => connection,
                Err(error) => {
                    log::warn!("metrics: failed to accept a connection: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let state = self.state.clone();
            let clock = self.clock;
            tokio::spawn(async move {
                if let Err(error) = serve_connection(stream, peer, &state, clock).await {
                    log::warn!("metrics: {peer}: {error}");
                }
                drop(permit);
            });
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    state: &SharedState,
    clock: Clock,
) -> anyhow::Result<()> {
    let head = match timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => anyhow::bail!(
            "timed out after {} s waiting for the request",
            IO_TIMEOUT.as_secs()
        ),
    };

    let response = match head {
        Head::Complete(bytes) => respond(&bytes, || {
            let state = state.lock();
            render(&state, clock.now_ns(&state.model))
        }),
        Head::TooLarge => {
            log::warn!("metrics: {peer}: request head over {MAX_REQUEST_BYTES} bytes rejected");
            plain(
                431,
                "Request Header Fields Too Large",
                "request head too large\n",
                &[],
            )
        }
    };

    let write = async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    };
    timeout(IO_TIMEOUT, write)
        .await
        .with_context(|| {
            format!(
                "timed out after {} s sending the response",
                IO_TIMEOUT.as_secs()
            )
        })?
        .context("failed to send the response")?;

    // Closing a socket with unread input makes the kernel send a reset,
    // which can destroy the response before the client reads it (a
    // rejected oversized request leaves input unread). Read what is left,
    // within bounds, before closing.
    let _ = timeout(LINGER_TIMEOUT, discard_input(&mut stream)).await;
    Ok(())
}

async fn discard_input(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut chunk = [0_u8; 1024];
    let mut discarded = 0;
    while discarded < MAX_DISCARD_BYTES {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        discarded += read;
    }
    Ok(())
}

enum Head {
    /// The request line and headers, up to the blank line.
    Complete(Vec<u8>),
    TooLarge,
}

/// Reads until the blank line that ends a request's head.
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<Head> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 1024];
    loop {
        let read = stream
            .read(&mut chunk)
            .await
            .context("failed to read the request")?;
        if read == 0 {
            anyhow::bail!("connection closed before the end of the request");
        }
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = find_head_end(&head) {
            head.truncate(end);
            return Ok(Head::Complete(head));
        }
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(Head::TooLarge);
        }
    }
}

/// Returns the length of the head up to and including its blank line.
/// Lines end with CRLF in HTTP/1.1, and a bare LF is accepted as well.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Builds the response to a request head. `body` renders the metrics and is
/// called only for a request of [`METRICS_PATH`].
pub(super) fn respond(head: &[u8], body: impl FnOnce() -> String) -> Vec<u8> {
    let Some((method, path)) = parse_request_line(head) else {
        return plain(400, "Bad Request", "malformed HTTP/1.x request line\n", &[]);
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return plain(
                405,
                "Method Not Allowed",
                "only GET and HEAD are served\n",
                &[("Allow", "GET, HEAD")],
            );
        }
    };
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    if path != METRICS_PATH {
        return plain(
            404,
            "Not Found",
            "not found: metrics are served at /metrics\n",
            &[],
        );
    }

    let body = body();
    let mut response = header(200, "OK", CONTENT_TYPE, body.len(), &[]);
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    response
}

/// The method and target of an HTTP/1.x request line.
fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line_end = head.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..line_end])
        .ok()?
        .trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !target.starts_with('/')
        || !version.starts_with("HTTP/1.")
    {
        return None;
    }
    Some((method, target))
}

fn plain(status: u16, reason: &str, text: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut response = header(
        status,
        reason,
        "text/plain; charset=utf-8",
        text.len(),
        extra,
    );
    response.extend_from_slice(text.as_bytes());
    response
}

fn header(
    status: u16,
    reason: &str,
    content_type: &str,
    length: usize,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n"
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}
