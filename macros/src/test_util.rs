//! Helpers for the expansion snapshots.

use proc_macro2::TokenStream;

/// `tokens` as prettyplease prints them, the way `cargo expand` shows code.
pub(crate) fn pretty(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(error) => panic!("the expansion is not a file ({error}):\n{tokens}"),
    }
}
