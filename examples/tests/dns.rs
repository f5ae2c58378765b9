//! The seed's programs on the dns registry (`--registry=dns`, go-micro's dns selector), with
//! a real DNS server on loopback (dnsmasq) holding the SRV record
//! `_student_service._tcp.local` that points at the running `student_service`: the client
//! finds and calls it; without the record it prints go-micro's not-found error.
#![cfg(feature = "dns")]

mod support;

use std::time::Instant;

use rmicro_conformance::servers::dnsmasq::Dnsmasq;
use rmicro_conformance::servers::free_port;
use support::{CLIENT, DAVIE, NOT_FOUND, Proc, SERVICE, UP, run, seed_lock, stderr, stdout};

#[test]
fn student_client_finds_student_service_through_dns() {
    let _lock = seed_lock();
    let port = free_port();
    // DNS is read-only: the service's registration is a no-op; the record is the operator's.
    let mut service = Proc::spawn(
        SERVICE,
        &[
            "--registry=dns",
            &format!("--server_address=127.0.0.1:{port}"),
        ],
        &[],
    );
    service.wait_for("registered", UP);

    let mut dns = Dnsmasq::start(&[
        format!("--srv-host=_student_service._tcp.local,students.local,{port}"),
        "--host-record=students.local,127.0.0.1".to_owned(),
    ]);
    let flags = [
        "--registry=dns".to_owned(),
        format!("--registry_address={}", dns.addr()),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let started = Instant::now();
    let out = run(CLIENT, &flags, &[]);
    assert_eq!(stdout(&out).trim(), DAVIE, "stderr: {}", stderr(&out));
    println!(
        "measured: student_client through DNS in {:?}",
        started.elapsed()
    );

    dns.serve(&[]);
    let out = run(CLIENT, &flags, &[]);
    assert_eq!(stdout(&out).trim(), NOT_FOUND, "stderr: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(1));
}
