//! Attribute macros of rmicro. Use them through the `rmicro` crate.
use proc_macro::TokenStream;

/// See `rmicro::service`.
#[proc_macro_attribute]
pub fn service(_attr: TokenStream, item: TokenStream) -> TokenStream { item }
/// See `rmicro::handlers`.
#[proc_macro_attribute]
pub fn handlers(_attr: TokenStream, item: TokenStream) -> TokenStream { item }
/// See `rmicro::subscribe`.
#[proc_macro_attribute]
pub fn subscribe(_attr: TokenStream, item: TokenStream) -> TokenStream { item }
/// See `rmicro::main`.
#[proc_macro_attribute]
pub fn main(_attr: TokenStream, item: TokenStream) -> TokenStream { item }
