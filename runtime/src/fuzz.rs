//! Entry points for the fuzz targets of `fuzz/` (built with the `fuzzing` feature; not part of
//! the API). Each hands untrusted bytes, as they come off the network, to the decoder that
//! reads them there; none may panic, loop or allocate without bound, whatever the bytes.

/// An mDNS packet.
pub fn mdns_packet(data: &[u8]) {
    crate::registry::mdns::fuzz_packet(data);
}

/// A go-micro TXT record's strings.
pub fn mdns_txt(data: &[u8]) {
    crate::registry::mdns::fuzz_txt(data);
}

/// A value of etcd's registry prefix.
pub fn etcd_value(data: &[u8]) {
    crate::registry::etcd::fuzz_value(data);
}

/// Consul's `/v1/health/service/<name>` answer.
pub fn consul_health(data: &[u8]) {
    crate::registry::consul::fuzz_health(data);
}

/// go-micro's consul tags, one per line.
pub fn consul_tags(data: &[u8]) {
    crate::registry::consul::fuzz_tags(data);
}

/// A mucp request's headers, `name: value` per line.
pub fn mucp_headers(data: &[u8]) {
    crate::rpc::server::fuzz_headers(data);
}

/// A go-micro error, as `Micro-Error` carries it.
pub fn error(data: &[u8]) {
    let _ = crate::Error::parse(&String::from_utf8_lossy(data));
}

/// A broker message envelope (every broker that carries go-micro's JSON envelope).
pub fn envelope(data: &[u8]) {
    let _ = crate::broker::Message::from_envelope(data);
}

/// A delivery to the http broker: query line, newline, body.
pub fn http_broker(data: &[u8]) {
    crate::broker::http::fuzz_delivery(data);
}
