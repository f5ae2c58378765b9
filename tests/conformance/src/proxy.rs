//! A TCP proxy on a loopback port that a test can cut and heal: a network partition between
//! a client and its server, without root, namespaces or firewall rules.
//!
//! While cut, the connections it carried are closed and new ones are accepted and closed at
//! once (a peer sees a reset or an immediate end of stream, as through a failed link or a
//! restarted middlebox); healed, it forwards again.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A cuttable TCP proxy to one target. Dropping it stops it.
pub struct Proxy {
    addr: SocketAddr,
    up: Arc<watch::Sender<bool>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy on 127.0.0.1");
        let addr = listener.local_addr().expect("the proxy's address");
        let up = Arc::new(watch::channel(true).0);
        let accept = tokio::spawn(accept_loop(listener, target, Arc::clone(&up)));
        Proxy { addr, up, accept }
    }

    /// The address clients connect to instead of the target's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts the link: open connections are closed, new ones refused until [`Proxy::heal`].
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.up.send_replace(false);
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, up: Arc<watch::Sender<bool>>) {
    while let Ok((client, _)) = listener.accept().await {
        if !*up.borrow() {
            drop(client);
            continue;
        }
        let mut cut = up.subscribe();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let (mut client, mut server) = (client, server);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.wait_for(|up| !*up) => {}
            }
        });
    }
}
