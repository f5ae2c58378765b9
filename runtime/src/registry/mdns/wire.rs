//! DNS messages on the wire, read and written with simple-dns and reduced to the owned values
//! the registry works with: A, AAAA, PTR, SRV and TXT records. Names are kept without the
//! trailing dot and in the case they were sent in.

use std::net::{Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::{A, AAAA, PTR, RData, SRV, TXT};
use simple_dns::{
    CLASS, CharacterString, Name, Packet, PacketFlag, QCLASS, QTYPE, Question as DnsQuestion,
    ResourceRecord, SimpleDnsError, TYPE,
};

/// Record type A.
pub(crate) const TYPE_A: u16 = 1;
/// Record type PTR.
pub(crate) const TYPE_PTR: u16 = 12;
/// Record type TXT.
pub(crate) const TYPE_TXT: u16 = 16;
/// Record type AAAA.
pub(crate) const TYPE_AAAA: u16 = 28;
/// Record type SRV.
pub(crate) const TYPE_SRV: u16 = 33;
/// Query type ANY.
pub(crate) const TYPE_ANY: u16 = 255;

/// A DNS message, reduced to what the registry reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The query id.
    pub id: u16,
    /// QR: a response rather than a query.
    pub response: bool,
    /// OPCODE (must be 0 in mDNS).
    pub opcode: u8,
    /// RCODE (must be 0 in mDNS).
    pub rcode: u8,
    /// The questions.
    pub questions: Vec<Question>,
    /// The answer and additional records, in that order (authority records are left out).
    pub records: Vec<Record>,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    /// The name asked about, without the trailing dot.
    pub name: String,
    /// QTYPE.
    pub qtype: u16,
    /// Whether the querier prefers a unicast answer (top bit of QCLASS).
    pub unicast: bool,
}

/// One resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The owner name, without the trailing dot.
    pub name: String,
    /// Time to live in seconds; 0 is a goodbye.
    pub ttl: u32,
    /// The data.
    pub data: Data,
}

/// The data of the record types the registry reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Pointer to another name.
    Ptr(String),
    /// Service location.
    Srv {
        /// The port.
        port: u16,
        /// The host name whose A/AAAA records hold the address.
        target: String,
    },
    /// The character strings, joined with nothing between them (as go-micro joins them).
    Txt(Vec<u8>),
    /// Any other type.
    Other,
}

/// Reads one DNS message.
pub(crate) fn parse(buf: &[u8]) -> Result<Message, SimpleDnsError> {
    let packet = Packet::parse(buf)?;
    // The header is there: simple-dns read it. Flags straight from the bytes.
    let (flags, codes) = (buf[2], buf[3]);
    let questions = packet
        .questions
        .iter()
        .map(|q| Question {
            name: q.qname.to_string(),
            qtype: u16::from(q.qtype),
            unicast: q.unicast_response,
        })
        .collect();
    let id = packet.id();
    let records = packet
        .answers
        .into_iter()
        .chain(packet.additional_records)
        .map(record)
        .collect();
    Ok(Message {
        id,
        response: flags & 0x80 != 0,
        opcode: (flags >> 3) & 0xF,
        rcode: codes & 0xF,
        questions,
        records,
    })
}

fn record(rr: ResourceRecord<'_>) -> Record {
    let data = match rr.rdata {
        RData::A(a) => Data::A(Ipv4Addr::from(a.address)),
        RData::AAAA(a) => Data::Aaaa(Ipv6Addr::from(a.address)),
        RData::PTR(ptr) => Data::Ptr(ptr.0.to_string()),
        RData::SRV(srv) => Data::Srv {
            port: srv.port,
            target: srv.target.to_string(),
        },
        // go-micro joins the strings with nothing between them; hex is ASCII, anything else
        // fails to decode later and is skipped there.
        RData::TXT(txt) => {
            Data::Txt(String::try_from(txt).map_or_else(|e| e.into_bytes(), String::into_bytes))
        }
        // go-micro's `_services` entries have a TXT record with no data at all.
        RData::Empty(TYPE::TXT) => Data::Txt(Vec::new()),
        _ => Data::Other,
    };
    Record {
        name: rr.name.to_string(),
        ttl: rr.ttl,
        data,
    }
}

/// One record to send. Names are without the trailing dot and already validated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rec<'a> {
    /// The owner name.
    pub name: &'a str,
    /// Time to live in seconds.
    pub ttl: u32,
    /// The data.
    pub data: RecData<'a>,
}

/// The data of a record to send.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RecData<'a> {
    /// Pointer to another name.
    Ptr(&'a str),
    /// Service location: port and target host name.
    Srv(u16, &'a str),
    /// Character strings of at most 255 bytes each; none gives one empty string.
    Txt(&'a [String]),
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
}

/// A response (QR and AA set) holding `records` as answers, echoing `question` if given.
pub(crate) fn response(
    id: u16,
    question: Option<&Question>,
    records: &[Rec<'_>],
) -> Result<Vec<u8>, SimpleDnsError> {
    let mut packet = Packet::new_reply(id);
    packet.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if let Some(q) = question {
        packet.questions.push(DnsQuestion::new(
            Name::new_unchecked(&q.name),
            QTYPE::try_from(q.qtype)?,
            QCLASS::CLASS(CLASS::IN),
            q.unicast,
        ));
    }
    for rec in records {
        let rdata = match rec.data {
            RecData::Ptr(target) => RData::PTR(PTR(Name::new_unchecked(target))),
            RecData::Srv(port, target) => RData::SRV(SRV {
                // go-micro's values.
                priority: 10,
                weight: 1,
                port,
                target: Name::new_unchecked(target),
            }),
            RecData::Txt(strings) => {
                let mut txt = TXT::new();
                for s in strings {
                    txt.add_char_string(CharacterString::new(s.as_bytes())?);
                }
                RData::TXT(txt)
            }
            RecData::A(ip) => RData::A(A::from(ip)),
            RecData::Aaaa(ip) => RData::AAAA(AAAA::from(ip)),
        };
        packet.answers.push(ResourceRecord::new(
            Name::new_unchecked(rec.name),
            CLASS::IN,
            rec.ttl,
            rdata,
        ));
    }
    packet.build_bytes_vec_compressed()
}

/// A query asking each `(name, qtype)`, recursion not desired.
pub(crate) fn query(id: u16, questions: &[(&str, u16)]) -> Result<Vec<u8>, SimpleDnsError> {
    let mut packet = Packet::new_query(id);
    packet.remove_flags(PacketFlag::RECURSION_DESIRED);
    for &(name, qtype) in questions {
        let qtype = if qtype == TYPE_ANY {
            QTYPE::ANY
        } else {
            QTYPE::TYPE(TYPE::from(qtype))
        };
        packet.questions.push(DnsQuestion::new(
            Name::new_unchecked(name),
            qtype,
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
    }
    packet.build_bytes_vec_compressed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        let txt = vec!["abc".to_owned(), "def".to_owned()];
        let question = Question {
            name: "greeter.micro".into(),
            qtype: TYPE_PTR,
            unicast: false,
        };
        let bytes = response(
            7,
            Some(&question),
            &[
                Rec {
                    name: "greeter.micro",
                    ttl: 120,
                    data: RecData::Ptr("n-1.greeter.micro"),
                },
                Rec {
                    name: "n-1.greeter.micro",
                    ttl: 120,
                    data: RecData::Srv(8080, "n-1.greeter.micro"),
                },
                Rec {
                    name: "n-1.greeter.micro",
                    ttl: 120,
                    data: RecData::Txt(&txt),
                },
                Rec {
                    name: "n-1.greeter.micro",
                    ttl: 0,
                    data: RecData::A(Ipv4Addr::LOCALHOST),
                },
                Rec {
                    name: "n-1.greeter.micro",
                    ttl: 120,
                    data: RecData::Aaaa(Ipv6Addr::LOCALHOST),
                },
            ],
        )
        .expect("build");
        let msg = parse(&bytes).expect("parse");
        assert_eq!(msg.id, 7);
        assert!(msg.response);
        assert_eq!((msg.opcode, msg.rcode), (0, 0));
        assert_eq!(msg.questions, vec![question]);
        let data: Vec<_> = msg.records.iter().map(|r| r.data.clone()).collect();
        assert_eq!(
            data,
            vec![
                Data::Ptr("n-1.greeter.micro".into()),
                Data::Srv {
                    port: 8080,
                    target: "n-1.greeter.micro".into()
                },
                Data::Txt(b"abcdef".to_vec()),
                Data::A(Ipv4Addr::LOCALHOST),
                Data::Aaaa(Ipv6Addr::LOCALHOST),
            ]
        );
        assert!(
            msg.records
                .iter()
                .all(|r| r.name == "n-1.greeter.micro" || r.name == "greeter.micro")
        );
        assert_eq!(msg.records[3].ttl, 0);
        // Names repeat, so compression pointers were used and followed.
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
    }

    #[test]
    fn writes_queries() {
        let bytes = query(0, &[("_services.micro", TYPE_PTR), ("x.micro", TYPE_ANY)]).expect("q");
        let msg = parse(&bytes).expect("parse");
        assert!(!msg.response);
        assert_eq!(msg.questions.len(), 2);
        assert_eq!(msg.questions[0].name, "_services.micro");
        assert_eq!(msg.questions[0].qtype, TYPE_PTR);
        assert_eq!(msg.questions[1].qtype, TYPE_ANY);
        // RD is clear, as go-micro's client sends it.
        assert_eq!(bytes[2] & 0x01, 0);
    }

    /// A response as go-micro's `_services` entry (miekg/dns) sends it: a TXT record with
    /// zero-length data.
    #[test]
    fn reads_an_empty_txt_record() {
        let mut bytes = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        bytes.extend_from_slice(b"\x01s\x09_services\x05micro\x00");
        bytes.extend_from_slice(&[0, 16, 0, 1, 0, 0, 0, 120, 0, 0]);
        let msg = parse(&bytes).expect("parse");
        assert_eq!(msg.records[0].name, "s._services.micro");
        assert_eq!(msg.records[0].data, Data::Txt(vec![]));
    }

    #[test]
    fn refuses_loops_and_overruns_without_panicking() {
        // A name that points at itself.
        let mut looped = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        looped.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert!(parse(&looped).is_err());
        // Counts promising more than there is.
        assert!(parse(&[0, 0, 0x84, 0, 0, 0, 0, 9, 0, 0, 0, 0]).is_err());
        assert!(parse(&[1, 2, 3]).is_err());
        // An A record of 3 bytes.
        let mut short_a = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        short_a.extend_from_slice(&[1, b'x', 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 3, 1, 2, 3]);
        assert!(parse(&short_a).is_err());
    }

    #[test]
    fn survives_every_truncation_and_random_bytes() {
        let txt = vec!["0123456789abcdef".repeat(10)];
        let bytes = response(
            1,
            None,
            &[
                Rec {
                    name: "n.s.micro",
                    ttl: 1,
                    data: RecData::Srv(1, "n.s.micro"),
                },
                Rec {
                    name: "n.s.micro",
                    ttl: 1,
                    data: RecData::Txt(&txt),
                },
            ],
        )
        .expect("build");
        for end in 0..bytes.len() {
            let _ = parse(&bytes[..end]);
        }
        let mut seed = 0x2545_f491_u32;
        for _ in 0..2000 {
            let mut junk = bytes.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let at = seed as usize % junk.len();
                junk[at] = (seed >> 8) as u8;
            }
            let _ = parse(&junk);
        }
    }
}
