//! A Consul agent (`consul agent -dev`, built by `scripts/consul.sh`) on free loopback ports:
//! HTTP, serf LAN, serf WAN and server RPC on 127.0.0.1; DNS, gRPC and gRPC-TLS off, so nothing
//! else listens. `-dev` keeps its state in memory: a restart comes back empty.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{Server, require};

/// How long the agent may take to listen, elect itself leader and sync its catalog.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Starts an agent and waits until its catalog answers.
pub fn start() -> Server {
    start_with(&[], None)
}

/// Starts an agent with ACLs on (default policy `deny`) and `management` as its initial
/// management token.
pub fn start_with_acl(management: &str) -> Server {
    let acl = format!(
        "acl {{\n enabled = true\n default_policy = \"deny\"\n tokens {{ initial_management = \"{management}\" }}\n}}"
    );
    start_with(&[&acl], Some(management))
}

/// Starts an agent with extra HCL configuration blocks; `token` is the one the readiness
/// probe uses (when ACLs are on).
pub fn start_with(hcl: &[&str], token: Option<&str>) -> Server {
    let mut args = vec!["-dev".to_owned(), "-node=rmicro-test".to_owned()];
    args.extend(hcl.iter().map(|block| format!("-hcl={block}")));
    let server = agent(distinct_ports(1).remove(0), args);
    wait_ready(&server, token);
    server
}

/// Starts a cluster of `n` Consul servers (`-server -bootstrap-expect=n`, not `-dev`: state
/// on disk, in each server's directory) on free loopback ports, joined to each other, and
/// waits until every server's catalog answers (the cluster has a leader).
pub fn start_cluster(n: usize) -> Vec<Server> {
    let ports = distinct_ports(n);
    let members: Vec<Server> = ports
        .iter()
        .enumerate()
        .map(|(i, &own)| {
            let mut args = vec![
                "-server".to_owned(),
                format!("-node=rmicro-server-{i}"),
                format!("-bootstrap-expect={n}"),
                // Production's election timing (the default multiplier, 5, is for small VMs).
                "-hcl=performance { raft_multiplier = 1 }".to_owned(),
            ];
            for (j, other) in ports.iter().enumerate() {
                if j != i {
                    args.push(format!("-retry-join=127.0.0.1:{}", other[1]));
                }
            }
            agent(own, args)
        })
        .collect();
    for member in &members {
        wait_ready(member, None);
    }
    members
}

/// An agent on `[http, serf lan, serf wan, server rpc]` ports of 127.0.0.1 with DNS and gRPC
/// off, started with `mode` (`-dev`, or `-server` and its cluster) after the common
/// arguments; waits until its HTTP port accepts connections.
fn agent([http, lan, wan, rpc]: [u16; 4], mode: Vec<String>) -> Server {
    let program = require("consul");
    let mut args: Vec<String> = [
        "agent",
        "-bind=127.0.0.1",
        "-client=127.0.0.1",
        "-advertise=127.0.0.1",
        "-disable-host-node-id",
        "-data-dir={dir}/data",
        "-dns-port=-1",
        "-grpc-port=-1",
        "-grpc-tls-port=-1",
        "-log-level=warn",
        "-hcl=disable_update_check = true",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend([
        format!("-http-port={http}"),
        format!("-serf-lan-port={lan}"),
        format!("-serf-wan-port={wan}"),
        format!("-server-port={rpc}"),
    ]);
    args.extend(mode);
    let addr = SocketAddr::from(([127, 0, 0, 1], http));
    let mut server = Server::start("consul", &program, &args, &[], addr, READY_WITHIN);
    server.extra_ports.extend([lan, wan, rpc]);
    server
}

/// Whether the server serving HTTP on `server` leads its cluster (`/v1/status/leader` names
/// its own server port).
pub fn is_leader(server: &Server) -> bool {
    let Some(rpc) = server.extra_ports.get(2) else {
        return false;
    };
    get(server.addr, "/v1/status/leader", None)
        .is_some_and(|(status, body)| status == 200 && body.contains(&format!(":{rpc}\"")))
}

/// Four free loopback ports for each of `n` agents, all different (held together while they
/// are picked: picked one agent at a time, a port released by one could be handed to the
/// next, and the second agent would fail to bind it); the second and third of each (serf LAN
/// and WAN) are free for UDP too, which serf also uses.
fn distinct_ports(n: usize) -> Vec<[u16; 4]> {
    loop {
        let held: Vec<std::net::TcpListener> = (0..4 * n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().expect("bound").port())
            .collect();
        let agents: Vec<[u16; 4]> = ports
            .chunks_exact(4)
            .map(|p| [p[0], p[1], p[2], p[3]])
            .collect();
        let udp_free = agents.iter().all(|p| {
            p[1..3]
                .iter()
                .all(|port| std::net::UdpSocket::bind(("127.0.0.1", *port)).is_ok())
        });
        if udp_free {
            return agents;
        }
    }
}

/// Kills the agent and starts it again on the same ports; `-dev` keeps no state, so it comes
/// back empty. Waits until it is ready.
pub fn restart(server: &mut Server) {
    server.restart(true, READY_WITHIN);
    wait_ready(server, None);
}

/// The address clients use, `127.0.0.1:<http port>`.
pub fn address(server: &Server) -> String {
    server.addr.to_string()
}

/// Waits until the agent has a leader and its catalog lists the `consul` service itself.
pub fn wait_ready(server: &Server, token: Option<&str>) {
    let deadline = Instant::now() + READY_WITHIN;
    while !get(server.addr, "/v1/catalog/services", token)
        .is_some_and(|(status, body)| status == 200 && body.contains("\"consul\""))
    {
        assert!(
            Instant::now() < deadline,
            "consul on {} was not ready within {READY_WITHIN:?}:\n{}",
            server.addr,
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP/1.0 GET: the status and the body, `None` when the agent does not answer.
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token.map_or(String::new(), |t| format!("X-Consul-Token: {t}\r\n"));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}
