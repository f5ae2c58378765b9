//! The registry's UDP sockets: the shared mDNS port (joined to 224.0.0.251 on one interface)
//! and ephemeral query sockets. Everything is pinned to the chosen interface, so with the
//! loopback interface nothing can leave the machine.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::{Error, Result};

use super::ERROR_ID;

/// The mDNS IPv4 group.
pub(crate) const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

/// The hint added to errors about multicast on the loopback interface.
const LOOPBACK_HINT: &str = "on Linux the loopback interface may lack the MULTICAST flag: run \
     `ip link set lo multicast on` as root";

/// The socket on the mDNS port every registry on the machine shares (SO_REUSEADDR and
/// SO_REUSEPORT), a member of the group on `interface`, sending multicast there with loopback on
/// (so processes on this machine hear each other).
pub(crate) fn group_socket(interface: Ipv4Addr, port: u16) -> Result<UdpSocket> {
    let socket = new_socket(interface).map_err(|e| setup_error("create the mdns socket", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| setup_error("set SO_REUSEADDR", e))?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    socket
        .set_reuse_port(true)
        .map_err(|e| setup_error("set SO_REUSEPORT", e))?;
    // Only traffic of the groups this socket joined, not of every group anyone on the machine
    // joined on any interface.
    #[cfg(target_os = "linux")]
    socket
        .set_multicast_all_v4(false)
        .map_err(|e| setup_error("clear IP_MULTICAST_ALL", e))?;
    let bind = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    socket.bind(&bind.into()).map_err(|e| {
        Error::internal_server_error(
            ERROR_ID,
            format!("mdns cannot bind udp port {port}: {e} (another program holds it without SO_REUSEADDR?)"),
        )
    })?;
    socket.join_multicast_v4(&GROUP, &interface).map_err(|e| {
        let hint = if interface.is_loopback() {
            format!("; {LOOPBACK_HINT}")
        } else {
            String::new()
        };
        Error::internal_server_error(
            ERROR_ID,
            format!("mdns cannot join group {GROUP} on interface `{interface}`: {e}{hint}"),
        )
    })?;
    into_tokio(socket)
}

/// An ephemeral socket on `interface` for sending queries and receiving unicast answers.
pub(crate) fn query_socket(interface: Ipv4Addr) -> Result<UdpSocket> {
    let socket =
        new_socket(interface).map_err(|e| setup_error("create an mdns query socket", e))?;
    socket
        .bind(&SocketAddrV4::new(interface, 0).into())
        .map_err(|e| setup_error(&format!("bind a query socket to `{interface}`"), e))?;
    into_tokio(socket)
}

/// A UDP socket whose multicast goes out on `interface` only, looped back to this machine; on
/// Linux a loopback interface also binds the socket to the `lo` device, so neither sending nor
/// receiving can touch another interface.
fn new_socket(interface: Ipv4Addr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    #[cfg(target_os = "linux")]
    if interface.is_loopback() {
        socket.bind_device(Some(b"lo"))?;
    }
    socket.set_multicast_if_v4(&interface)?;
    socket.set_multicast_loop_v4(true)?;
    // RFC 6762 §11; 224.0.0.251 is link-local and never routed whatever the TTL.
    socket.set_multicast_ttl_v4(255)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn into_tokio(socket: Socket) -> Result<UdpSocket> {
    UdpSocket::from_std(socket.into()).map_err(|e| setup_error("register the socket with tokio", e))
}

fn setup_error(what: &str, e: io::Error) -> Error {
    Error::internal_server_error(ERROR_ID, format!("mdns cannot {what}: {e}"))
}

/// The source address the routing table gives traffic to the mDNS group (a UDP socket
/// connected there; nothing is sent), `None` when no route leads there.
pub(crate) fn routed_source() -> Option<Ipv4Addr> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((GROUP, 5353)).ok()?;
    match socket.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(source) => Some(source),
        std::net::IpAddr::V6(_) => None,
    }
}

/// What a registry on the loopback interface says when go-micro peers on this host cannot
/// reach it (they send multicast by the routing table): `None` when the group is routed to
/// loopback.
pub(crate) fn loopback_route_warning(routed: Option<Ipv4Addr>) -> Option<String> {
    let (via, fix) = match routed {
        Some(source) if source.is_loopback() => return None,
        Some(source) => (
            format!("is routed out through `{source}`"),
            format!(
                "to meet them, run this registry on that interface (`--registry_address={source}`)"
            ),
        ),
        None => (
            "has no route".to_owned(),
            "run `ip route add 224.0.0.0/4 dev lo` as root (what scripts/setup.sh does on a \
             loopback-only host)"
                .to_owned(),
        ),
    };
    Some(format!(
        "mdns: this registry speaks on the loopback interface, but multicast to {GROUP} {via}: \
         go-micro peers on this host (which send by the routing table) will not see its \
         services, nor it theirs; {fix}"
    ))
}

/// An error for a failed send to the group.
pub(crate) fn send_error(interface: Ipv4Addr, to: SocketAddr, e: &io::Error) -> Error {
    let hint = if interface.is_loopback() && to.ip().is_multicast() {
        format!("; {LOOPBACK_HINT}")
    } else {
        String::new()
    };
    Error::internal_server_error(
        ERROR_ID,
        format!("mdns cannot send to {to} on interface `{interface}`: {e}{hint}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_when_the_group_is_not_routed_to_loopback() {
        assert_eq!(loopback_route_warning(Some(Ipv4Addr::LOCALHOST)), None);
        assert_eq!(
            loopback_route_warning(Some(Ipv4Addr::new(127, 0, 0, 2))),
            None
        );
        let elsewhere = loopback_route_warning(Some(Ipv4Addr::new(192, 0, 2, 2)))
            .expect("routed out through another interface");
        assert!(
            elsewhere.contains("is routed out through `192.0.2.2`"),
            "{elsewhere}"
        );
        assert!(
            elsewhere.contains("`--registry_address=192.0.2.2`"),
            "{elsewhere}"
        );
        let nowhere = loopback_route_warning(None).expect("no route");
        assert!(nowhere.contains("has no route"), "{nowhere}");
        assert!(
            nowhere.contains("ip route add 224.0.0.0/4 dev lo"),
            "{nowhere}"
        );
    }
}
