//! Compile tests of rmicro's macros. The cases live under `tests/ui/`:
//!
//! - `fail/<topic>/*.rs`: each must fail to compile with exactly its `.stderr`;
//! - `pass/*.rs`: each must compile and run;
//! - `expand/*.rs`: `cargo expand` output pinned in `*.expanded.rs`.
//!
//! Regenerate with `TRYBUILD=overwrite` / `MACROTEST=overwrite` and read every diff.
