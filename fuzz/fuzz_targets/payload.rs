#![no_main]
//! A request or message payload, decoded as a handler's type would be: JSON (serde) and
//! protobuf (prost), both from the same bytes.

use rmicro::codec::{Decode as _, JSON, PROTOBUF, Proto};

#[derive(Clone, PartialEq, prost::Message, serde::Deserialize)]
struct Student {
    #[prost(string, tag = "1")]
    #[serde(default)]
    name: String,
    #[prost(string, tag = "2")]
    #[serde(default)]
    classes: String,
    #[prost(int32, tag = "3")]
    #[serde(default)]
    grade: i32,
    #[prost(string, repeated, tag = "4")]
    #[serde(default)]
    phones: Vec<String>,
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = Student::decode("fuzz", JSON, data);
    let _ = Proto::<Student>::decode("fuzz", PROTOBUF, data);
    let _ = serde_json::Value::decode("fuzz", JSON, data);
});
