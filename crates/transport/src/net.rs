//! The socket seam: how the controller server accepts connections and how
//! the controller channel opens one. Real TCP by default; tests and the
//! deterministic simulation substitute in-memory streams (any
//! `AsyncRead + AsyncWrite`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use sluice_auth::KafkaPrincipal;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// A boxed future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream to a peer.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// A boxed byte stream.
pub type BoxStream = Box<dyn Stream>;

/// An accepted connection and who is on the other end.
pub struct Accepted {
    pub stream: BoxStream,
    pub peer: SocketAddr,
    /// `User:ANONYMOUS` unless the acceptor authenticated the peer.
    pub principal: KafkaPrincipal,
}

/// Where the controller server gets its connections.
pub trait Acceptor: Send + 'static {
    /// The next connection and its peer address.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>>;
    /// The next connection with its principal (an acceptor that
    /// authenticates overrides this).
    fn accept_admitted(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let (stream, peer) = self.accept().await?;
            Ok(Accepted {
                stream,
                peer,
                principal: KafkaPrincipal::anonymous(),
            })
        })
    }
    /// The address it listens on.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// How the controller channel opens a connection to `host:port`.
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, address: String) -> BoxFuture<'static, io::Result<BoxStream>>;
}

/// A TCP listener.
pub struct TcpAcceptor(TcpListener);

impl TcpAcceptor {
    /// Binds `addr` (port 0: any free port).
    pub async fn bind(addr: SocketAddr) -> io::Result<TcpAcceptor> {
        Ok(TcpAcceptor(TcpListener::bind(addr).await?))
    }
}

impl Acceptor for TcpAcceptor {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (s, peer) = self.0.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Box::new(s) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Opens TCP connections (with TCP_NODELAY: requests are small).
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(&self, address: String) -> BoxFuture<'static, io::Result<BoxStream>> {
        Box::pin(async move {
            let s = TcpStream::connect(address).await?;
            let _ = s.set_nodelay(true);
            Ok(Box::new(s) as BoxStream)
        })
    }
}
