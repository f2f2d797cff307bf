//! The socket seam of the controller's internal RPC: connecting and
//! accepting byte streams. [`TcpTransport`] is tokio's TCP; a simulation
//! plugs in turmoil's network through the same traits, so the RPC code
//! and openraft run unchanged under simulated network and time.
//!
//! (Time needs no seam of its own: openraft and the RPC use tokio's clock,
//! which turmoil drives; wall-clock stamps come from a
//! [`sluice_storage::Clock`].)

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::BoxFuture;

/// A bidirectional byte stream.
pub trait Conn: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static> Conn for T {}

pub type BoxConn = Box<dyn Conn>;

/// Accepts inbound connections on a bound address.
pub trait Acceptor: Send + 'static {
    /// The next connection and its peer's address.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxConn, String)>>;
}

/// Connects and binds.
pub trait Transport: Send + Sync + 'static {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxConn>>;
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Acceptor>>>;
}

/// tokio's TCP, with `TCP_NODELAY` (RPCs are small request/response).
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpTransport;

/// A bound tokio listener.
pub struct TcpAcceptor(pub tokio::net::TcpListener);

impl TcpAcceptor {
    pub async fn bind(addr: &str) -> io::Result<Self> {
        Ok(TcpAcceptor(tokio::net::TcpListener::bind(addr).await?))
    }
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

impl Acceptor for TcpAcceptor {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxConn, String)>> {
        Box::pin(async move {
            let (s, peer) = self.0.accept().await?;
            s.set_nodelay(true)?;
            Ok((Box::new(s) as BoxConn, peer.to_string()))
        })
    }
}

impl Transport for TcpTransport {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxConn>> {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxConn)
        })
    }
    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn Acceptor>>> {
        Box::pin(async move { Ok(Box::new(TcpAcceptor::bind(addr).await?) as Box<dyn Acceptor>) })
    }
}
