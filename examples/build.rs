//! Compiles `proto/student.proto` (and `proto/school.proto`) with rmicro-build (prost-build +
//! protox: no protoc needed) into `$OUT_DIR/message.rs` (and `school.rs`), included by
//! `src/lib.rs`.

fn main() -> std::io::Result<()> {
    rmicro_build::compile_protos(&["proto/student.proto", "proto/school.proto"], &["proto"])
}
