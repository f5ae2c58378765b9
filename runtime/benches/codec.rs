//! JSON vs protobuf on the seed's Student, through rmicro's codec layer (what a call or a
//! published message pays): encoded size, encode and decode throughput, and the ratios.
//!
//! ```text
//! cargo bench -p rmicro --bench codec
//! ```
//!
//! The two codecs alternate within one run (best of several rounds each), so both see the
//! same machine state. Under `cargo test --benches` (no `--bench` argument) it runs one short
//! round as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rmicro::codec::{Decode, Encode, JSON, PROTOBUF, register_protobuf};

#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
#[serde(default)]
struct Student {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    classes: String,
    #[prost(int32, tag = "3")]
    grade: i32,
    #[prost(string, tag = "4")]
    phone: String,
}

fn davie() -> Student {
    Student {
        name: "davie".into(),
        classes: "软件工程专业".into(),
        grade: 80,
        phone: "12345678901".into(),
    }
}

#[derive(Clone, Copy)]
struct Measure {
    size: usize,
    encode: Duration,
    decode: Duration,
}

/// One round of `n` encodes then `n` decodes as `content_type`.
fn round(content_type: &str, n: u32) -> Measure {
    let student = davie();
    let body = student.encode("bench", content_type).expect("encode");
    let start = Instant::now();
    for _ in 0..n {
        black_box(
            black_box(&student)
                .encode("bench", content_type)
                .expect("encode"),
        );
    }
    let encode = start.elapsed();
    let start = Instant::now();
    for _ in 0..n {
        black_box(Student::decode("bench", content_type, black_box(&body)).expect("decode"));
    }
    let decode = start.elapsed();
    Measure {
        size: body.len(),
        encode,
        decode,
    }
}

fn per_sec(n: u32, d: Duration) -> f64 {
    f64::from(n) / d.as_secs_f64()
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let (rounds, n) = if benching { (7, 200_000) } else { (1, 1_000) };
    register_protobuf::<Student>();
    assert_eq!(
        Student::decode(
            "bench",
            PROTOBUF,
            &davie().encode("bench", PROTOBUF).expect("pb")
        )
        .expect("round trip"),
        davie()
    );

    let mut best: [Option<Measure>; 2] = [None, None];
    for _ in 0..rounds {
        for (i, ct) in [JSON, PROTOBUF].into_iter().enumerate() {
            let m = round(ct, n);
            best[i] = Some(match best[i] {
                None => m,
                Some(b) => Measure {
                    size: m.size,
                    encode: b.encode.min(m.encode),
                    decode: b.decode.min(m.decode),
                },
            });
        }
    }
    let [Some(json), Some(pb)] = best else {
        return;
    };
    println!("seed Student, {n} messages per round, best of {rounds} rounds, alternating codecs");
    println!(
        "{:<22} {:>10} {:>16} {:>16}",
        "codec", "size (B)", "encode (msg/s)", "decode (msg/s)"
    );
    for (name, m) in [("application/json", json), ("application/protobuf", pb)] {
        println!(
            "{:<22} {:>10} {:>16.0} {:>16.0}",
            name,
            m.size,
            per_sec(n, m.encode),
            per_sec(n, m.decode)
        );
    }
    println!(
        "{:<22} {:>10.2} {:>16.2} {:>16.2}",
        "protobuf / json",
        pb.size as f64 / json.size as f64,
        per_sec(n, pb.encode) / per_sec(n, json.encode),
        per_sec(n, pb.decode) / per_sec(n, json.decode)
    );
}
