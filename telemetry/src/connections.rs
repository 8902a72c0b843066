//! Counting a gRPC server's open connections: every accepted TCP stream carries a guard on a
//! [`Gauge`] that gives its unit back when tonic drops the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::metrics::Gauge;

/// A TCP stream counted in a gauge while it is open.
#[derive(Debug)]
pub struct CountedStream {
    inner: TcpStream,
    open: Arc<Gauge>,
}

impl CountedStream {
    fn new(inner: TcpStream, open: Arc<Gauge>) -> Self {
        open.add(1);
        CountedStream { inner, open }
    }
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.add(-1);
    }
}

impl Connected for CountedStream {
    // The plain stream's info, so that tonic's `remote_addr` and (under TLS) `peer_certs`
    // find what they look for.
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// `listener`'s connections, each counted in `open` until it closes (for
/// `Server::serve_with_incoming*`). Nagle is off, as tonic's own incoming sets it.
pub fn counted_incoming(listener: TcpListener, open: Arc<Gauge>) -> impl Stream<Item = io::Result<CountedStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(move |accepted| {
        let stream = accepted?;
        let _ = stream.set_nodelay(true);
        Ok(CountedStream::new(stream, open.clone()))
    })
}
