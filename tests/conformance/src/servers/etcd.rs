//! etcd (Debian's `etcd-server`, 3.4) as a one-member cluster on two free loopback ports
//! (client and peer), its data in the server's temporary directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{Server, free_port, require};

/// How long etcd may take to listen and elect itself leader.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Starts etcd and waits until it answers `/health` (it has a leader and serves requests).
pub fn start() -> Server {
    let (client, peer) = (free_port(), free_port());
    let server = member("default", client, peer, &[]);
    wait_healthy(&server);
    server
}

/// Starts a cluster of `n` members (`m0`, `m1`, ..) on free loopback ports, each with its own
/// data directory, and waits until every member is healthy (the cluster has a leader).
pub fn start_cluster(n: usize) -> Vec<Server> {
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let cluster = [
        "--initial-cluster",
        initial.as_str(),
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        "rmicro",
    ];
    let members: Vec<Server> = ports
        .iter()
        .enumerate()
        .map(|(i, &(client, peer))| member(&format!("m{i}"), client, peer, &cluster))
        .collect();
    for member in &members {
        wait_healthy(member);
    }
    members
}

/// One member named `name` on `client` and `peer` ports; `cluster` are the arguments naming
/// its peers (none: a cluster of its own).
fn member(name: &str, client: u16, peer: u16, cluster: &[&str]) -> Server {
    let program = require("etcd");
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let alone = format!("{name}={peer_url}");
    let cluster: Vec<&str> = if cluster.is_empty() {
        vec!["--initial-cluster", &alone]
    } else {
        cluster.to_vec()
    };
    let args: Vec<String> = [
        "--name",
        name,
        "--data-dir",
        "{dir}/data",
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
    ]
    .iter()
    .chain(cluster.iter())
    .map(|s| (*s).to_owned())
    .collect();
    let addr = SocketAddr::from(([127, 0, 0, 1], client));
    let mut server = Server::start("etcd", &program, &args, &[], addr, READY_WITHIN);
    server.extra_ports.push(peer);
    server
}

/// Whether the member serving on `server` is the cluster's leader (its status's `leader` is
/// its own member id).
pub fn is_leader(server: &Server) -> bool {
    let Some(status) = super::http(server.addr, "POST", "/v3/maintenance/status", b"{}") else {
        return false;
    };
    let field = |name: &str| {
        let start = status.find(&format!("\"{name}\":\""))? + name.len() + 4;
        let end = start + status[start..].find('"')?;
        Some(status[start..end].to_owned())
    };
    field("member_id").is_some_and(|me| field("leader") == Some(me))
}

/// Kills etcd and starts it again on the same ports, with its data unless `wipe`, and waits
/// until it is healthy.
pub fn restart(server: &mut Server, wipe: bool) {
    server.restart(wipe, READY_WITHIN);
    wait_healthy(server);
}

/// The endpoint clients use, `http://127.0.0.1:<port>`.
pub fn endpoint(server: &Server) -> String {
    format!("http://{}", server.addr)
}

/// Waits until etcd's `/health` says `true`.
pub fn wait_healthy(server: &Server) {
    let deadline = Instant::now() + READY_WITHIN;
    while !healthy(server.addr) {
        assert!(
            Instant::now() < deadline,
            "etcd on {} was not healthy within {READY_WITHIN:?}:\n{}",
            server.addr,
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains(r#""health":"true""#)
}
