//! `cargo expand` output of the macros, pinned in `tests/ui/expand/*.expanded.rs` (needs
//! `cargo install cargo-expand`). Regenerate with `MACROTEST=overwrite` and read the diff.
//! (macrotest names each case's binary after its position in the folder, and
//! `module_path!()` shows that name: adding a file renames the later ones.)

#[test]
fn expand() {
    macrotest::expand("tests/ui/expand/*.rs");
}
