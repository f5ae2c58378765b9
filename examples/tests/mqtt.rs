//! The seed's message scenario on a real mosquitto (issue 3): `message_subscriber
//! --broker=mqtt` receives what `message_publisher --broker=mqtt` sends, a message published
//! by another go-micro peer (go-micro's exact envelope bytes) is decoded by the subscriber,
//! and what the publisher sends is go-micro's envelope on the wire.
//!
//! The go-micro peer here is a minimal MQTT 3.1.1 client written out below over a plain
//! TCP socket (CONNECT, SUBSCRIBE, PUBLISH at QoS 1), so that nothing of rmicro or rumqttc
//! stands between the test and the wire. The subscriber's registry stays mDNS (loopback).
#![cfg(feature = "mqtt")]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rmicro_conformance::servers::mosquitto::Mosquitto;
use support::{DAVIE, PUBLISHER, Proc, SUBSCRIBER, TOPIC, UP, run, stderr, stdout};

/// A raw MQTT 3.1.1 client: just enough protocol for a go-micro peer's publish and subscribe.
struct RawMqtt {
    stream: TcpStream,
    next_id: u16,
}

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return;
        }
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl RawMqtt {
    fn connect(addr: SocketAddr) -> RawMqtt {
        let stream = TcpStream::connect(addr).expect("connect to mosquitto");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut raw = RawMqtt { stream, next_id: 1 };
        let mut body = Vec::new();
        string("MQTT", &mut body);
        body.extend_from_slice(&[4, 0x02, 0, 60]); // level 4, clean session, keep-alive 60 s
        string(&format!("gomicro-peer-{}", std::process::id()), &mut body);
        raw.send(0x10, &body);
        let (kind, body) = raw.read();
        assert_eq!(
            (kind, body.as_slice()),
            (0x20, &[0u8, 0][..]),
            "CONNACK accepted"
        );
        raw
    }

    fn send(&mut self, header: u8, body: &[u8]) {
        let mut packet = vec![header];
        remaining_length(body.len(), &mut packet);
        packet.extend_from_slice(body);
        self.stream.write_all(&packet).expect("write");
    }

    /// One packet: its first byte and its body.
    fn read(&mut self) -> (u8, Vec<u8>) {
        let mut first = [0u8; 1];
        self.stream.read_exact(&mut first).expect("read packet");
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b).expect("read length");
            len |= usize::from(b[0] & 0x7f) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).expect("read body");
        (first[0], body)
    }

    fn packet_id(&mut self) -> [u8; 2] {
        let id = self.next_id;
        self.next_id += 1;
        id.to_be_bytes()
    }

    fn subscribe(&mut self, filter: &str) {
        let id = self.packet_id();
        let mut body = id.to_vec();
        string(filter, &mut body);
        body.push(1); // QoS 1
        self.send(0x82, &body);
        let (kind, body) = self.read();
        assert_eq!(kind, 0x90, "SUBACK");
        assert_eq!(body, [id[0], id[1], 1], "granted QoS 1");
    }

    fn publish(&mut self, topic: &str, payload: &[u8]) {
        let id = self.packet_id();
        let mut body = Vec::new();
        string(topic, &mut body);
        body.extend_from_slice(&id);
        body.extend_from_slice(payload);
        self.send(0x32, &body); // PUBLISH, QoS 1
        let (kind, body) = self.read();
        assert_eq!((kind, body), (0x40, id.to_vec()), "PUBACK");
    }

    /// The next PUBLISH: its QoS, topic and payload (acknowledged when QoS 1).
    fn next_publish(&mut self) -> (u8, String, Vec<u8>) {
        loop {
            let (kind, body) = self.read();
            if kind & 0xf0 != 0x30 {
                continue;
            }
            let qos = (kind >> 1) & 0x03;
            let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let topic = String::from_utf8(body[2..2 + topic_len].to_vec()).expect("utf-8 topic");
            let mut rest = &body[2 + topic_len..];
            if qos > 0 {
                let id = [rest[0], rest[1]];
                rest = &rest[2..];
                self.send(0x40, &id);
            }
            return (qos, topic, rest.to_vec());
        }
    }
}

fn flags(server: &Mosquitto) -> [String; 2] {
    [
        "--broker=mqtt".to_owned(),
        format!("--broker_address={}", server.url()),
    ]
}

#[test]
fn message_subscriber_receives_what_message_publisher_sends_over_mosquitto() {
    let server = Mosquitto::start();
    let flags = flags(&server);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut subscriber = Proc::spawn(SUBSCRIBER, &args, &[]);
    let started = subscriber.wait_for("started", UP);
    assert!(started.contains("mqtt"), "{started}");

    // A go-micro peer listening on the topic too.
    let mut peer = RawMqtt::connect(server.addr());
    peer.subscribe(TOPIC);

    let out = run(PUBLISHER, &args, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out).trim(), format!("published to {TOPIC}"));

    subscriber.wait_for(&format!("received: {DAVIE} (name header: davie)"), UP);

    // What the publisher put on the wire is go-micro's envelope, at QoS 1, topic verbatim.
    let (qos, topic, payload) = peer.next_publish();
    assert_eq!((qos, topic.as_str()), (1, TOPIC));
    let envelope: serde_json::Value = serde_json::from_slice(&payload).expect("json envelope");
    assert_eq!(envelope["Header"]["Micro-Topic"], TOPIC);
    assert_eq!(envelope["Header"]["Content-Type"], "application/json");
    assert_eq!(envelope["Header"]["name"], "davie");
    let body = envelope["Body"].as_str().expect("base64 body");
    let decoded = base64_decode(body);
    let student: serde_json::Value = serde_json::from_slice(&decoded).expect("student json");
    assert_eq!(student["name"], "davie");
    assert_eq!(student["grade"], 80);
}

#[test]
fn message_subscriber_decodes_a_go_micro_peer_s_message() {
    let server = Mosquitto::start();
    let flags = flags(&server);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut subscriber = Proc::spawn(SUBSCRIBER, &args, &[]);
    subscriber.wait_for("started", UP);

    // go-micro v2's mqtt broker: `json.Marshal(&broker.Message{..})` of what client.Publish
    // builds (Content-Type, Micro-ID, Micro-Topic, plus the caller's `name` header).
    let student = r#"{"name":"gopher","classes":"go","grade":99,"phone":"555"}"#;
    let envelope = format!(
        r#"{{"Header":{{"Content-Type":"application/json","Micro-ID":"0b7c1f4e-8d1a-4f0e-9a4b-2f6d7c3e1a55","Micro-Topic":"{TOPIC}","name":"gopher"}},"Body":"{}"}}"#,
        base64_encode(student.as_bytes())
    );
    let mut peer = RawMqtt::connect(server.addr());
    peer.publish(TOPIC, envelope.as_bytes());

    subscriber.wait_for(&format!("received: {student} (name header: gopher)"), UP);
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Go's encoding/json writes `[]byte`.
fn base64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("base64 character") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_round_trips() {
    for s in ["", "a", "ab", "abc", "abcd", "{\"say\":\"hello from go\"}"] {
        assert_eq!(base64_decode(&base64_encode(s.as_bytes())), s.as_bytes());
    }
    assert_eq!(
        base64_encode(b"{\"say\":\"hello from go\"}"),
        "eyJzYXkiOiJoZWxsbyBmcm9tIGdvIn0="
    );
}
