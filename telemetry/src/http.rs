//! A small read-only HTTP/1.1 server for `/metrics` and the node's status page.
//!
//! Only `GET` and `HEAD`, one request per connection (`Connection: close`), with limits on
//! everything a client controls: the request head (8 KiB), the time to send it (10 s) and the
//! connections served at once (32; more are closed unanswered). That is all a Prometheus
//! scraper or a browser needs, without an HTTP framework in the dependency tree. Plaintext:
//! the caller binds it on loopback, or off loopback only when the operator said so.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

/// The largest request head read (request line and headers).
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// How long a client has to send its request head.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_HTTP_CONNECTIONS: usize = 32;

/// A parsed request: the method is `GET` or `HEAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The path, without the query (`/`, `/metrics`, `/receipt/…`).
    pub path: String,
    /// The query string after `?`, if any (not decoded).
    pub query: Option<String>,
}

/// A response: status, content type and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// A file name, for a `Content-Disposition: attachment` download (a receipt).
    pub attachment: Option<String>,
}

impl HttpResponse {
    /// `200` with `body`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse { status: 200, content_type, body: body.into(), attachment: None }
    }

    /// A plain-text error page.
    pub fn error(status: u16, message: &str) -> Self {
        HttpResponse { status, content_type: "text/plain; charset=utf-8", body: message.into(), attachment: None }
    }
}

/// The future a [`Handler`] returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HttpResponse> + Send>>;
/// Answers one request.
pub type Handler = Arc<dyn Fn(HttpRequest) -> HandlerFuture + Send + Sync>;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Binding or reading the bound address failed.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A plaintext listener off loopback without the operator's `--insecure`.
    #[error("listen on {addr}: plaintext HTTP off loopback needs --insecure (or bind 127.0.0.1 behind a proxy)")]
    PlaintextOffLoopback {
        /// The address.
        addr: SocketAddr,
    },
}

/// A server answering on [`HttpServer::addr`] until [`HttpServer::shutdown`].
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ip:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting; connections being served finish on their own (each is bounded).
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Binds `listen` and answers every request with `handler`. The server is plaintext, so a
/// non-loopback `listen` is refused unless `insecure` (the operator's explicit choice, as for
/// gRPC).
pub async fn serve(listen: SocketAddr, insecure: bool, handler: Handler) -> Result<HttpServer, HttpError> {
    if !listen.ip().is_loopback() && !insecure {
        return Err(HttpError::PlaintextOffLoopback { addr: listen });
    }
    let bind_error = |source| HttpError::Bind { addr: listen, source };
    let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let (stop, mut stopped) = oneshot::channel::<()>();
    let permits = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = &mut stopped => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else { continue };
            // Beyond the bound the connection is closed unanswered: a flood costs an accept.
            let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
            let handler = handler.clone();
            tokio::spawn(async move {
                answer(stream, &handler).await;
                drop(permit);
            });
        }
    });
    Ok(HttpServer { addr, stop, task })
}

/// Why a request head was refused, as the status it gets.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    Malformed,
    TooLarge,
    Method,
}

impl HeadError {
    fn response(&self) -> HttpResponse {
        match self {
            HeadError::Malformed => HttpResponse::error(400, "bad request"),
            HeadError::TooLarge => HttpResponse::error(431, "request head too large"),
            HeadError::Method => HttpResponse::error(405, "only GET and HEAD"),
        }
    }
}

async fn answer(mut stream: TcpStream, handler: &Handler) {
    let head = match tokio::time::timeout(REQUEST_HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(_)) | Err(_) => return,
    };
    let (response, is_head) = match parse_head(&head) {
        Ok((request, is_head)) => (handler(request).await, is_head),
        Err(e) => (e.response(), false),
    };
    let _ = write_response(&mut stream, &response, is_head).await;
}

/// Reads up to the blank line that ends the head, at most [`MAX_REQUEST_HEAD_BYTES`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let read = stream.read(&mut buf).await?;
        if read == 0 {
            return Ok(head);
        }
        head.extend_from_slice(&buf[..read]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() > MAX_REQUEST_HEAD_BYTES {
            return Ok(head);
        }
    }
}

/// The request line of `head`: `GET|HEAD SP target SP HTTP/1.x`.
fn parse_head(head: &[u8]) -> Result<(HttpRequest, bool), HeadError> {
    if head.len() > MAX_REQUEST_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").ok_or(HeadError::Malformed)?;
    let text = std::str::from_utf8(&head[..end]).map_err(|_| HeadError::Malformed)?;
    let line = text.lines().next().ok_or(HeadError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(HeadError::Malformed);
    }
    let is_head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(HeadError::Method),
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (target.to_string(), None),
    };
    Ok((HttpRequest { path, query }, is_head))
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

async fn write_response(stream: &mut TcpStream, response: &HttpResponse, is_head: bool) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n",
        response.status,
        reason_phrase(response.status),
        response.content_type,
        response.body.len(),
    );
    if let Some(name) = &response.attachment {
        // The name is the caller's (hex and a fixed suffix), never a client's.
        head.push_str(&format!("Content-Disposition: attachment; filename=\"{name}\"\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !is_head {
        stream.write_all(&response.body).await?;
    }
    stream.shutdown().await
}

/// `GET path` from `addr` over one plaintext connection (a helper for tests and tools): the
/// status and the body.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(invalid)?;
    let status_line = std::str::from_utf8(&response[..end]).map_err(|_| invalid())?.lines().next().unwrap_or("");
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(invalid)?;
    Ok((status, response[end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_parsed_or_refused() {
        let ok = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(ok, (HttpRequest { path: "/metrics".into(), query: Some("x=1".into()) }, false));
        assert!(parse_head(b"HEAD / HTTP/1.0\r\n\r\n").unwrap().1);
        assert_eq!(parse_head(b"POST / HTTP/1.1\r\n\r\n").unwrap_err(), HeadError::Method);
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\n").unwrap_err(), HeadError::Malformed);
        assert_eq!(parse_head(b"GET http://x/ HTTP/1.1\r\n\r\n").unwrap_err(), HeadError::Malformed);
        assert_eq!(parse_head(b"GET / HTTP/2 extra\r\n\r\n").unwrap_err(), HeadError::Malformed);
        let huge = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_REQUEST_HEAD_BYTES], b"\r\n\r\n"].concat();
        assert_eq!(parse_head(&huge).unwrap_err(), HeadError::TooLarge);
    }

    #[tokio::test]
    async fn a_server_answers_get_and_refuses_the_rest() {
        let handler: Handler = Arc::new(|request: HttpRequest| {
            Box::pin(async move {
                match request.path.as_str() {
                    "/" => HttpResponse::ok("text/plain", "hello"),
                    _ => HttpResponse::error(404, "no such page"),
                }
            })
        });
        let off_loopback = serve("0.0.0.0:0".parse().unwrap(), false, handler.clone()).await;
        assert!(matches!(off_loopback, Err(HttpError::PlaintextOffLoopback { .. })));
        let server = serve("127.0.0.1:0".parse().unwrap(), false, handler).await.unwrap();
        assert_eq!(get(server.addr(), "/").await.unwrap(), (200, b"hello".to_vec()));
        assert_eq!(get(server.addr(), "/nope").await.unwrap().0, 404);
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(b"DELETE / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
        server.shutdown().await;
    }
}
