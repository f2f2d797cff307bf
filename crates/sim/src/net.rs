//! turmoil's TCP behind the node's three socket seams: the metadata log's
//! raft RPC (`sluice_controller::raft::transport`), the controller
//! listener and channel and the replica fetchers
//! (`sluice_transport::net`), and the broker's client listener (through
//! `sluice_transport::net::Acceptor`).

use std::io;
use std::net::SocketAddr;

use sluice_controller::raft::transport::{Acceptor as RaftAcceptor, BoxConn, Transport};
use sluice_controller::BoxFuture;
use sluice_transport::net::{Acceptor, BoxStream, Connector};

/// Connections over the simulated network.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimNet;

/// A simulated listening socket.
pub struct SimListener(pub turmoil::net::TcpListener);

impl SimListener {
    /// Binds `port` on every address of the current host.
    pub async fn bind(port: u16) -> io::Result<SimListener> {
        Ok(SimListener(
            turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?,
        ))
    }
}

fn split(address: &str) -> io::Result<(String, u16)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad address {address}"),
        )
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    Ok((host.to_string(), port.parse().map_err(|_| bad())?))
}

async fn connect(address: &str) -> io::Result<turmoil::net::TcpStream> {
    let (host, port) = split(address)?;
    turmoil::net::TcpStream::connect((host.as_str(), port)).await
}

impl Connector for SimNet {
    fn connect(&self, address: String) -> BoxFuture<'static, io::Result<BoxStream>> {
        Box::pin(async move { Ok(Box::new(connect(&address).await?) as BoxStream) })
    }
}

impl Transport for SimNet {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxConn>> {
        Box::pin(async move { Ok(Box::new(connect(addr).await?) as BoxConn) })
    }

    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<Box<dyn RaftAcceptor>>> {
        Box::pin(async move {
            let (_, port) = split(addr)?;
            Ok(Box::new(SimListener::bind(port).await?) as Box<dyn RaftAcceptor>)
        })
    }
}

impl Acceptor for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (s, peer) = self.0.accept().await?;
            Ok((Box::new(s) as BoxStream, peer))
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl RaftAcceptor for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxConn, String)>> {
        Box::pin(async move {
            let (s, peer) = self.0.accept().await?;
            Ok((Box::new(s) as BoxConn, peer.to_string()))
        })
    }
}
