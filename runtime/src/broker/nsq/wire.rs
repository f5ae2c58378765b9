//! NSQ's TCP protocol (V2), as nsqd 1.x speaks it: what the broker needs of it.
//!
//! A client sends the magic `"  V2"`, then commands, each a line (`SUB <topic> <channel>\n`)
//! and, for some, a body framed by its length (`PUB <topic>\n<u32 size><bytes>`). nsqd sends
//! frames, `<u32 size><u32 type><data>`: type 0 a response (`OK`, `_heartbeat_`,
//! `CLOSE_WAIT`, or the JSON answer to `IDENTIFY`), 1 an error (`E_INVALID ...`), 2 a message
//! (`<u64 timestamp><u16 attempts><16-byte id><body>`). A client answers every
//! `_heartbeat_` with `NOP`, or nsqd closes the connection after two missed ones.

use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// The protocol's magic, sent first.
pub(super) const MAGIC: &[u8; 4] = b"  V2";
/// The response nsqd sends instead of data to see whether the client is alive.
pub(super) const HEARTBEAT: &[u8] = b"_heartbeat_";
/// The largest frame read, whatever nsqd announces: a corrupt size never allocates more.
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// One frame from nsqd.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame {
    Response(Bytes),
    Error(Bytes),
    Message(NsqMessage),
}

/// A message frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct NsqMessage {
    /// How many times nsqd has delivered it, this time included.
    pub(super) attempts: u16,
    /// Its id, 16 printable bytes, for `FIN`/`REQ`/`TOUCH`.
    pub(super) id: [u8; 16],
    pub(super) body: Bytes,
}

/// What nsqd answers to `IDENTIFY` with `feature_negotiation` (the fields used).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Negotiated {
    #[serde(default)]
    pub(super) max_rdy_count: Option<u64>,
    #[serde(default)]
    pub(super) msg_timeout: Option<u64>,
    #[serde(default)]
    pub(super) auth_required: bool,
    /// Whether nsqd upgrades the connection to TLS after this answer.
    #[serde(default)]
    pub(super) tls_v1: bool,
}

/// The `IDENTIFY` body; `heartbeat` `None` turns nsqd's heartbeats off (a publishing
/// connection, which reads only when it publishes, would otherwise be closed after two
/// unanswered heartbeats of idleness). `tls`: ask for TLS (`tls_v1`).
pub(super) fn identify_body(client_id: &str, heartbeat: Option<Duration>, tls: bool) -> Vec<u8> {
    let heartbeat: i64 = heartbeat.map_or(-1, |h| i64::try_from(h.as_millis()).unwrap_or(i64::MAX));
    serde_json::json!({
        "client_id": client_id,
        "hostname": client_id,
        "user_agent": concat!("rmicro/", env!("CARGO_PKG_VERSION")),
        "feature_negotiation": true,
        "tls_v1": tls,
        "heartbeat_interval": heartbeat,
        // nsqd buffers what it sends a consumer for up to 250 ms unless told otherwise: a
        // message would wait that long whenever traffic is light. No buffering (nsqd then
        // writes each frame as it goes; under load its RDY window keeps frames coming).
        "output_buffer_size": -1,
    })
    .to_string()
    .into_bytes()
}

/// A command line, and a body for those that take one.
pub(super) fn command(out: &mut BytesMut, line: &[&[u8]], body: Option<&[u8]>) {
    for (i, part) in line.iter().enumerate() {
        if i > 0 {
            out.put_u8(b' ');
        }
        out.put_slice(part);
    }
    out.put_u8(b'\n');
    if let Some(body) = body {
        // Bodies are bounded by the caller (max_msg_size); u32 covers 4 GiB.
        out.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
        out.put_slice(body);
    }
}

/// Writes `bytes` and flushes.
pub(super) async fn send<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

/// Reads one frame.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Frame> {
    let size = r.read_u32().await? as usize;
    if !(4..=MAX_FRAME).contains(&size) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("nsqd sent a frame of {size} bytes"),
        ));
    }
    let mut data = BytesMut::zeroed(size);
    r.read_exact(&mut data).await?;
    parse_frame(data.freeze())
}

fn parse_frame(mut data: Bytes) -> std::io::Result<Frame> {
    let kind = data.get_u32();
    match kind {
        0 => Ok(Frame::Response(data)),
        1 => Ok(Frame::Error(data)),
        2 if data.len() >= 26 => {
            let _timestamp = data.get_u64();
            let attempts = data.get_u16();
            let mut id = [0u8; 16];
            data.copy_to_slice(&mut id);
            Ok(Frame::Message(NsqMessage {
                attempts,
                id,
                body: data,
            }))
        }
        other => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "nsqd sent a frame of unknown type {other} ({} bytes)",
                data.len()
            ),
        )),
    }
}

/// Whether `name` is a valid topic or channel name (nsqd's rule: 1 to 64 of `.a-zA-Z0-9_-`,
/// optionally ending in `#ephemeral`).
pub(super) fn valid_name(name: &str) -> bool {
    let base = name.strip_suffix("#ephemeral").unwrap_or(name);
    (1..=64).contains(&name.len())
        && !base.is_empty()
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_lines_with_sized_bodies() {
        let mut out = BytesMut::new();
        command(&mut out, &[b"PUB", b"t"], Some(b"hello"));
        assert_eq!(&out[..], b"PUB t\n\x00\x00\x00\x05hello");
        out.clear();
        command(&mut out, &[b"SUB", b"t", b"c#ephemeral"], None);
        assert_eq!(&out[..], b"SUB t c#ephemeral\n");
    }

    #[tokio::test]
    async fn frames_parse() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&6u32.to_be_bytes());
        wire.extend_from_slice(&0u32.to_be_bytes());
        wire.extend_from_slice(b"OK");
        let body = b"{}";
        wire.extend_from_slice(&(4 + 26 + body.len() as u32).to_be_bytes());
        wire.extend_from_slice(&2u32.to_be_bytes());
        wire.extend_from_slice(&7u64.to_be_bytes());
        wire.extend_from_slice(&3u16.to_be_bytes());
        wire.extend_from_slice(b"0123456789abcdef");
        wire.extend_from_slice(body);
        let mut r = &wire[..];
        assert_eq!(
            read_frame(&mut r).await.expect("response"),
            Frame::Response(Bytes::from_static(b"OK"))
        );
        let Frame::Message(m) = read_frame(&mut r).await.expect("message") else {
            panic!("a message frame");
        };
        assert_eq!(
            (m.attempts, &m.id, &m.body[..]),
            (3, b"0123456789abcdef", &b"{}"[..])
        );
    }

    #[tokio::test]
    async fn bad_frames_are_errors_not_panics() {
        for wire in [
            &[0, 0, 0, 2, 0, 0][..],               // shorter than its type
            &[0xff, 0xff, 0xff, 0xff][..],         // 4 GiB
            &[0, 0, 0, 6, 0, 0, 0, 9, 1, 2][..],   // unknown type
            &[0, 0, 0, 8, 0, 0, 0, 2, 1, 2, 3, 4], // message shorter than its header
        ] {
            let mut r = wire;
            assert!(read_frame(&mut r).await.is_err(), "{wire:?}");
        }
    }

    #[test]
    fn names_follow_nsqd() {
        assert!(valid_name("go.micro.srv.message"));
        assert!(valid_name("f6b5d2a4-6a4b-4a55-a4b7-3bd0a4a2c6d1#ephemeral"));
        assert!(!valid_name(""));
        assert!(!valid_name("#ephemeral"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
