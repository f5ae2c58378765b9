//! Random identifiers: request ids, message ids, node ids.

/// A random (version 4) UUID from the thread-local CSPRNG (`rand`'s `ThreadRng`, seeded from
/// the OS and reseeded periodically), not from a `getrandom` system call per id: request and
/// message ids are made once per call and per published message.
pub(crate) fn uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// [`uuid`] as its 36-character hyphenated text, written without the formatting machinery.
pub(crate) fn uuid_string() -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid().hyphenated().encode_lower(&mut buf).to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_version_4_and_distinct() {
        let a = super::uuid();
        let b = super::uuid();
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
        let text = super::uuid_string();
        let parsed = uuid::Uuid::parse_str(&text).expect("a uuid");
        assert_eq!(text, parsed.to_string());
        assert_eq!(parsed.get_version_num(), 4);
    }
}
