//! The mDNS registry over real sockets on the loopback interface (never any other): two
//! registries in one process with separate sockets, as two processes would have, and one test
//! across two real processes. Every test uses its own service names, so tests running at once,
//! here or in other test binaries, do not see each other.

use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt as _;
use rmicro::registry::mdns::{MdnsOptions, MdnsRegistry};
use rmicro::registry::{
    Action, Change, Endpoint, Metadata, Node, RegisterOptions, Registry, Service, Value,
    WatchOptions, Watcher,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// Set in the child process of [`two_processes_see_each_other`]: the service it registers.
const CHILD_ENV: &str = "RMICRO_MDNS_TEST_CHILD_SERVICE";
/// What the child prints once registered.
const READY: &str = "rmicro-mdns-child-ready";

fn registry() -> MdnsRegistry {
    let opts = MdnsOptions::default();
    assert_eq!(
        opts.interface,
        Ipv4Addr::LOCALHOST,
        "tests speak on loopback only"
    );
    MdnsRegistry::new(opts).expect("mdns registry on loopback")
}

/// A service name no other test uses, short enough that `<name>-<uuid>` node ids fit in one
/// 63-byte DNS label.
fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..12])
}

fn node(service: &str, port: u16, meta: &[(&str, &str)]) -> Node {
    Node {
        id: format!("{service}-{}", uuid::Uuid::new_v4()),
        address: format!("127.0.0.1:{port}"),
        metadata: meta
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn service(name: &str, version: &str, nodes: Vec<Node>) -> Service {
    Service {
        name: name.into(),
        version: version.into(),
        metadata: Metadata::new(),
        endpoints: vec![Endpoint {
            name: "Greeter.Hello".into(),
            request: Some(Value {
                name: "Request".into(),
                type_: "Request".into(),
                values: vec![Value {
                    name: "name".into(),
                    type_: "string".into(),
                    values: vec![],
                }],
            }),
            response: None,
            metadata: Metadata::from([("stream".into(), "false".into())]),
        }],
        nodes,
    }
}

fn ttl(secs: u64) -> RegisterOptions {
    RegisterOptions::ttl(Duration::from_secs(secs))
}

/// Looks `name` up on `registry` until `done` holds for the result (within 10 s).
async fn get_until(
    registry: &MdnsRegistry,
    name: &str,
    done: impl Fn(&[Service]) -> bool,
) -> Vec<Service> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = registry.get_service(name).await.expect("get_service");
        if done(&found) {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{name}` never reached the expected state; last seen: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn listed(registry: &MdnsRegistry, name: &str) -> bool {
    let services = registry.list_services().await.expect("list_services");
    services.iter().any(|s| s.name == name)
}

async fn next(watcher: &mut Watcher) -> Change {
    tokio::time::timeout(Duration::from_secs(10), watcher.next())
        .await
        .expect("a change within 10 s")
        .expect("watch stream open")
        .expect("no watch error")
}

fn ids(services: &[Service]) -> Vec<&str> {
    services
        .iter()
        .flat_map(|s| &s.nodes)
        .map(|n| n.id.as_str())
        .collect()
}

#[tokio::test]
async fn registered_on_one_registry_is_found_and_listed_by_another() {
    let (owner, client) = (registry(), registry());
    let name = unique("greeter");
    let mut nodes = vec![
        node(&name, 8081, &[("protocol", "mucp"), ("zone", "a")]),
        node(&name, 8082, &[("protocol", "mucp"), ("zone", "b")]),
    ];
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let svc = service(&name, "1.0.0", nodes.clone());
    owner.register(&svc, ttl(30)).await.expect("register");

    let found = get_until(&client, &name, |s| ids(s).len() == 2).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, name);
    assert_eq!(found[0].version, "1.0.0");
    assert_eq!(found[0].endpoints, svc.endpoints);
    // Nodes come back sorted by id, with their own metadata and address.
    assert_eq!(found[0].nodes, nodes);
    assert!(listed(&client, &name).await);
    // The owner finds its own service the same way.
    assert_eq!(owner.get_service(&name).await.expect("get")[0].nodes, nodes);
}

#[tokio::test]
async fn deregistered_nodes_and_services_are_gone() {
    let (owner, client) = (registry(), registry());
    let name = unique("gone");
    let (a, b) = (node(&name, 9001, &[]), node(&name, 9002, &[]));
    let svc = service(&name, "v1", vec![a.clone(), b.clone()]);
    owner.register(&svc, ttl(30)).await.expect("register");
    get_until(&client, &name, |s| ids(s).len() == 2).await;

    owner
        .deregister(&service(&name, "v1", vec![a.clone()]))
        .await
        .expect("deregister a");
    let left = get_until(&client, &name, |s| ids(s).len() == 1).await;
    assert_eq!(ids(&left), vec![b.id.as_str()]);
    assert!(listed(&client, &name).await, "still listed with one node");

    owner.deregister(&svc).await.expect("deregister all");
    get_until(&client, &name, <[Service]>::is_empty).await;
    assert!(!listed(&client, &name).await);
}

#[tokio::test]
async fn watch_sees_create_update_and_delete_from_another_registry() {
    let (owner, watcher_side) = (registry(), registry());
    let name = unique("watched");
    let mut watcher = watcher_side
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");

    let n = node(&name, 7001, &[("zone", "a")]);
    let svc = service(&name, "v1", vec![n.clone()]);
    owner.register(&svc, ttl(30)).await.expect("register");
    let created = next(&mut watcher).await;
    assert_eq!(created.action, Action::Create);
    assert_eq!(created.service.name, name);
    assert_eq!(created.service.version, "v1");
    assert_eq!(created.service.nodes, vec![n.clone()]);
    assert_eq!(created.service.endpoints, svc.endpoints);

    // Registered again with new metadata: the same node, updated.
    let mut changed = n.clone();
    changed.metadata.insert("zone".into(), "b".into());
    owner
        .register(&service(&name, "v1", vec![changed.clone()]), ttl(30))
        .await
        .expect("register again");
    let updated = next(&mut watcher).await;
    assert_eq!(updated.action, Action::Update);
    assert_eq!(updated.service.nodes, vec![changed.clone()]);
    let found = get_until(&watcher_side, &name, |s| ids(s).len() == 1).await;
    assert_eq!(
        found[0].nodes,
        vec![changed.clone()],
        "updated, not duplicated"
    );

    owner.deregister(&svc).await.expect("deregister");
    let deleted = next(&mut watcher).await;
    assert_eq!(deleted.action, Action::Delete);
    assert_eq!(deleted.service.nodes[0].id, n.id);
}

#[tokio::test]
async fn services_and_versions_do_not_interfere() {
    let (one, two) = (registry(), registry());
    let (first, second) = (unique("first"), unique("second"));
    let mut watch_first = two
        .watch(WatchOptions::service(&first))
        .await
        .expect("watch");
    let mut watch_all = one.watch(WatchOptions::default()).await.expect("watch all");

    let second_node = node(&second, 6001, &[]);
    two.register(&service(&second, "v1", vec![second_node.clone()]), ttl(30))
        .await
        .expect("register second");
    let (v1, v2) = (node(&first, 6002, &[]), node(&first, 6003, &[]));
    one.register(&service(&first, "v1", vec![v1.clone()]), ttl(30))
        .await
        .expect("register first v1");
    one.register(&service(&first, "v2", vec![v2.clone()]), ttl(30))
        .await
        .expect("register first v2");

    // Versions are separate services, each with its own node.
    let found = get_until(&two, &first, |s| s.len() == 2).await;
    assert_eq!(found[0].version, "v1");
    assert_eq!(ids(&found[..1]), vec![v1.id.as_str()]);
    assert_eq!(found[1].version, "v2");
    assert_eq!(ids(&found[1..]), vec![v2.id.as_str()]);
    let found = get_until(&one, &second, |s| !s.is_empty()).await;
    assert_eq!(ids(&found), vec![second_node.id.as_str()]);

    // The filtered watch sees only `first`; the unfiltered one sees both.
    for _ in 0..2 {
        let change = next(&mut watch_first).await;
        assert_eq!(change.service.name, first);
        assert_eq!(change.action, Action::Create);
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let change = next(&mut watch_all).await;
        if change.service.name == first || change.service.name == second {
            seen.push(change.service.nodes[0].id.clone());
        }
    }
    seen.sort();
    let mut want = vec![v1.id, v2.id, second_node.id];
    want.sort();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn a_silent_node_expires_after_its_ttl_and_a_live_one_does_not() {
    let (live_owner, watcher_side) = (registry(), registry());
    let dying_owner = registry();
    let name = unique("ttl");
    let mut watcher = watcher_side
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");

    let live = node(&name, 5001, &[]);
    let dying = node(&name, 5002, &[]);
    live_owner
        .register(&service(&name, "v1", vec![live.clone()]), ttl(2))
        .await
        .expect("register live");
    dying_owner
        .register(&service(&name, "v1", vec![dying.clone()]), ttl(2))
        .await
        .expect("register dying");
    let mut created: Vec<String> = Vec::new();
    for _ in 0..2 {
        let change = next(&mut watcher).await;
        assert_eq!(change.action, Action::Create);
        created.push(change.service.nodes[0].id.clone());
    }
    created.sort();
    let mut want = vec![live.id.clone(), dying.id.clone()];
    want.sort();
    assert_eq!(created, want);

    // Gone without a goodbye, as a crashed process: deleted once its 2 s TTL runs out.
    drop(dying_owner);
    let change = next(&mut watcher).await;
    assert_eq!(change.action, Action::Delete);
    assert_eq!(change.service.nodes[0].id, dying.id);

    // The live node, with a TTL of 2 s, keeps answering and outlives two TTLs.
    let quiet = tokio::time::timeout(Duration::from_secs(4), watcher.next()).await;
    assert!(quiet.is_err(), "no change expected, got {quiet:?}");
    let found = get_until(&watcher_side, &name, |s| !s.is_empty()).await;
    assert_eq!(ids(&found), vec![live.id.as_str()]);
}

/// A socket that multicasts on the loopback interface only.
fn loopback_sender() -> std::net::UdpSocket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    #[cfg(target_os = "linux")]
    socket.bind_device(Some(b"lo")).expect("bind to lo");
    socket
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .expect("multicast if");
    socket.set_multicast_loop_v4(true).expect("loop");
    socket
        .bind(&std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .expect("bind");
    socket.into()
}

/// go-micro's TXT: lowercase hex of zlib(JSON), as its `encode` writes it.
fn go_txt(service: &str, version: &str, metadata: &[(&str, &str)]) -> String {
    use std::io::Write as _;
    let meta: Metadata = metadata
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let json = serde_json::json!({
        "Service": service, "Version": version, "Endpoints": null, "Metadata": meta,
    });
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(json.to_string().as_bytes()).expect("zlib");
    hex::encode(zlib.finish().expect("zlib"))
}

/// An announcement as go-micro's `util/mdns` server sends it: SRV (priority 10, weight 1)
/// pointing at the machine's host name, an A record on that host name, the TXT; no PTR, no
/// question, id 0.
fn go_announcement(instance: &str, port: u16, txt: &str, ttl: u32) -> Vec<u8> {
    use simple_dns::rdata::{A, RData, SRV, TXT};
    use simple_dns::{CLASS, Name, Packet, ResourceRecord};
    let mut packet = Packet::new_reply(0);
    let host = Name::new_unchecked("gohost");
    let name = Name::new_unchecked(instance);
    packet.answers.push(ResourceRecord::new(
        name.clone(),
        CLASS::IN,
        ttl,
        RData::SRV(SRV {
            priority: 10,
            weight: 1,
            port,
            target: host.clone(),
        }),
    ));
    packet.answers.push(ResourceRecord::new(
        host,
        CLASS::IN,
        ttl,
        RData::A(A::from(Ipv4Addr::new(127, 0, 0, 7))),
    ));
    let mut strings = TXT::new();
    for chunk in txt.as_bytes().chunks(255) {
        strings.add_char_string(simple_dns::CharacterString::new(chunk).expect("string"));
    }
    packet.answers.push(ResourceRecord::new(
        name,
        CLASS::IN,
        ttl,
        RData::TXT(strings),
    ));
    packet.build_bytes_vec().expect("packet")
}

#[tokio::test]
async fn go_micro_announcements_and_goodbyes_are_watched() {
    let registry = registry();
    let name = unique("gopeer");
    let mut watcher = registry
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");
    let sender = loopback_sender();
    let group = (Ipv4Addr::new(224, 0, 0, 251), 5353);
    let instance = format!("{name}-go.{name}.micro");
    let txt = go_txt(&name, "latest", &[("protocol", "mucp")]);

    sender
        .send_to(&go_announcement(&instance, 9090, &txt, 120), group)
        .expect("announce");
    let created = next(&mut watcher).await;
    assert_eq!(created.action, Action::Create);
    assert_eq!(created.service.version, "latest");
    assert_eq!(created.service.nodes[0].id, format!("{name}-go"));
    assert_eq!(created.service.nodes[0].address, "127.0.0.7:9090");
    assert_eq!(created.service.nodes[0].metadata["protocol"], "mucp");

    sender
        .send_to(&go_announcement(&instance, 9090, &txt, 0), group)
        .expect("goodbye");
    let deleted = next(&mut watcher).await;
    assert_eq!(deleted.action, Action::Delete);
    assert_eq!(deleted.service.nodes[0].id, format!("{name}-go"));
}

#[tokio::test]
async fn answers_go_micro_queries_one_node_per_packet_with_the_question() {
    let owner = registry();
    let name = unique("answers");
    let nodes = vec![node(&name, 2001, &[]), node(&name, 2002, &[])];
    owner
        .register(&service(&name, "v1", nodes), ttl(30))
        .await
        .expect("register");

    // The query go-micro's client sends: PTR `<service>.micro.`, RD clear, from an ephemeral
    // port.
    let qname = format!("{name}.micro");
    let mut query = simple_dns::Packet::new_query(4242);
    query.questions.push(simple_dns::Question::new(
        simple_dns::Name::new_unchecked(&qname),
        simple_dns::QTYPE::TYPE(simple_dns::TYPE::PTR),
        simple_dns::QCLASS::CLASS(simple_dns::CLASS::IN),
        false,
    ));
    let sender = tokio::net::UdpSocket::from_std({
        let socket = loopback_sender();
        socket.set_nonblocking(true).expect("nonblocking");
        socket
    })
    .expect("tokio socket");
    sender
        .send_to(
            &query.build_bytes_vec().expect("query"),
            (Ipv4Addr::new(224, 0, 0, 251), 5353),
        )
        .await
        .expect("send query");

    let mut instances = Vec::new();
    let mut buf = vec![0u8; 65536];
    while instances.len() < 2 {
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), sender.recv_from(&mut buf))
            .await
            .expect("an answer within 5 s")
            .expect("recv");
        let answer = simple_dns::Packet::parse(&buf[..len]).expect("a dns packet");
        assert_eq!(answer.questions.len(), 1, "the question is echoed");
        assert_eq!(
            answer.questions[0].qname.to_string(),
            format!("{name}.micro")
        );
        let kinds: Vec<u16> = answer
            .answers
            .iter()
            .map(|rr| u16::from(rr.rdata.type_code()))
            .collect();
        assert_eq!(kinds, vec![12, 33, 16, 1], "PTR, SRV, TXT, A for one node");
        assert!(answer.answers.iter().all(|rr| rr.ttl == 30));
        let simple_dns::rdata::RData::PTR(ptr) = &answer.answers[0].rdata else {
            panic!("PTR first");
        };
        instances.push(ptr.0.to_string());
    }
    instances.sort();
    instances.dedup();
    assert_eq!(instances.len(), 2, "one packet per node: {instances:?}");
}

#[tokio::test]
async fn malformed_packets_are_skipped() {
    let (owner, client) = (registry(), registry());
    let name = unique("sturdy");
    let mut watcher = client
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");

    let sender = loopback_sender();
    let group = (Ipv4Addr::new(224, 0, 0, 251), 5353);
    let instance = format!("x.{name}.micro");
    let mut bad_txt = vec![0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0];
    for (rtype, rdata) in [
        (33u16, vec![0, 10, 0, 1, 0x1f, 0x90, 0]),
        (16u16, b"\x06zzzzzz".to_vec()),
    ] {
        for label in instance.split('.') {
            bad_txt.push(label.len() as u8);
            bad_txt.extend_from_slice(label.as_bytes());
        }
        bad_txt.push(0);
        bad_txt.extend_from_slice(&rtype.to_be_bytes());
        bad_txt.extend_from_slice(&[0, 1, 0, 0, 0, 120]);
        bad_txt.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        bad_txt.extend_from_slice(&rdata);
    }
    let garbage: [&[u8]; 5] = [
        b"",
        b"\x00",
        &[0xff; 12],
        &[0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xC0, 12],
        &bad_txt,
    ];
    for packet in garbage {
        sender.send_to(packet, group).expect("send garbage");
    }

    // Still answering and watching: the first change is the real registration.
    let n = node(&name, 4001, &[]);
    owner
        .register(&service(&name, "v1", vec![n.clone()]), ttl(30))
        .await
        .expect("register");
    let change = next(&mut watcher).await;
    assert_eq!(change.action, Action::Create);
    assert_eq!(change.service.nodes, vec![n.clone()]);
    let found = get_until(&client, &name, |s| !s.is_empty()).await;
    assert_eq!(ids(&found), vec![n.id.as_str()]);
}

#[tokio::test]
async fn bad_registrations_are_refused_with_clear_errors() {
    let registry = registry();
    let name = unique("bad");
    let mut svc = service(&name, "v1", vec![node(&name, 1, &[])]);
    svc.nodes[0].address = "localhost:8080".into();
    let err = registry
        .register(&svc, ttl(1))
        .await
        .expect_err("host names are refused");
    assert_eq!(err.code, 400);
    assert!(
        err.detail.contains("expected an IP address and port"),
        "{err}"
    );
    // Nothing of a refused registration is announced.
    assert!(registry.get_service(&name).await.expect("get").is_empty());
    assert!(!listed(&registry, &name).await);

    let err = registry
        .register(&service("", "v1", vec![]), ttl(1))
        .await
        .expect_err("empty names are refused");
    assert!(err.detail.contains("empty label"), "{err}");
}

/// The other side of [`two_processes_see_each_other`]: a no-op unless [`CHILD_ENV`] is set.
/// Then it registers the named service, prints [`READY`], waits for standard input to close,
/// deregisters and ends.
#[tokio::test]
async fn child_process_helper() {
    let Ok(name) = std::env::var(CHILD_ENV) else {
        return;
    };
    let registry = registry();
    let svc = service(&name, "v9", vec![node(&name, 3001, &[("from", "child")])]);
    registry
        .register(&svc, ttl(30))
        .await
        .expect("register in child");
    println!("{READY}");
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    let _ = stdin.read_line(&mut line).await;
    registry
        .deregister(&svc)
        .await
        .expect("deregister in child");
}

#[tokio::test]
async fn two_processes_see_each_other() {
    let local = registry();
    let name = unique("crossproc");
    let mut watcher = local
        .watch(WatchOptions::service(&name))
        .await
        .expect("watch");

    let exe = std::env::current_exe().expect("test binary");
    let mut child = tokio::process::Command::new(exe)
        .args([
            "child_process_helper",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the child process");
    let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("child output") {
            // libtest may print the test's name on the same line.
            if line.contains(READY) {
                return true;
            }
        }
        false
    })
    .await
    .expect("child ready within 30 s");
    assert!(ready, "the child ended before registering");

    // Registered in the other process: watched, found and listed here.
    let created = next(&mut watcher).await;
    assert_eq!(created.action, Action::Create);
    assert_eq!(created.service.nodes[0].metadata["from"], "child");
    let found = get_until(&local, &name, |s| !s.is_empty()).await;
    assert_eq!(found[0].version, "v9");
    assert_eq!(found[0].nodes[0].address, "127.0.0.1:3001");
    assert!(listed(&local, &name).await);

    // Closing its standard input makes the child deregister: a goodbye reaches us.
    drop(child.stdin.take());
    let deleted = next(&mut watcher).await;
    assert_eq!(deleted.action, Action::Delete);
    assert_eq!(deleted.service.nodes[0].id, created.service.nodes[0].id);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("child ends within 30 s")
        .expect("child status");
    assert!(status.success(), "child failed: {status}");
    get_until(&local, &name, <[Service]>::is_empty).await;
}
