//! Error accumulation and rustc-style suggestions shared by every macro.

use std::fmt::{self, Display};

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::Item;

/// The errors of one attribute, reported together so that three mistakes give three errors.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// No errors yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records `error`.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Records `message` spanning `tokens` (from their first to their last token).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records `message` at `span`.
    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Whether nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many errors were recorded, to tell whether a check added one.
    pub(crate) fn len(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |errors| errors.into_iter().count())
    }

    /// `Ok` when nothing was recorded, all errors otherwise.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Emits `item` unchanged followed by the errors, so that one mistake in an attribute does not
/// cascade into errors about the item.
pub(crate) fn with_errors(item: impl ToTokens, errors: &syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    let mut out = item.into_token_stream();
    out.extend(errors);
    out
}

/// What kind of item `item` is (`"an enum"`) and the tokens that head it (`enum Color`), for
/// errors about an attribute on the wrong kind of item.
pub(crate) fn item_kind(item: &Item) -> (&'static str, TokenStream) {
    fn head(keyword: &impl ToTokens, name: &impl ToTokens) -> TokenStream {
        quote!(#keyword #name)
    }
    match item {
        Item::Struct(s) => ("a struct", head(&s.struct_token, &s.ident)),
        Item::Enum(e) => ("an enum", head(&e.enum_token, &e.ident)),
        Item::Union(u) => ("a union", head(&u.union_token, &u.ident)),
        Item::Fn(f) => {
            let (asyncness, fn_token) = (&f.sig.asyncness, &f.sig.fn_token);
            (
                "a function",
                head(&quote!(#asyncness #fn_token), &f.sig.ident),
            )
        }
        Item::Impl(i) => ("an impl block", head(&i.impl_token, &i.self_ty)),
        Item::Trait(t) => ("a trait", head(&t.trait_token, &t.ident)),
        Item::Mod(m) => ("a module", head(&m.mod_token, &m.ident)),
        Item::Const(c) => ("a constant", head(&c.const_token, &c.ident)),
        Item::Static(s) => ("a static", head(&s.static_token, &s.ident)),
        Item::Type(t) => ("a type alias", head(&t.type_token, &t.ident)),
        Item::Use(u) => ("a `use` declaration", u.to_token_stream()),
        other => ("this item", other.to_token_stream()),
    }
}

/// The candidate closest to `input`, if one is close enough to be what the user meant:
/// an edit distance of at most a third of the input's length (at least 1), as rustc does.
pub(crate) fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|candidate| *candidate != input)
        .map(|candidate| {
            let distance = if candidate.eq_ignore_ascii_case(input) {
                0
            } else {
                edit_distance(input, candidate)
            };
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Edit distance over chars where a swap of two neighbours counts as one edit (optimal string
/// alignment), as rustc's suggestions use: `nmae` is one edit from `name`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j] = distance between a[..i] and b[..j]
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Formats names as `` `a`, `b`, `c` `` for "expected one of" lists.
pub(crate) struct OneOf<'a>(pub(crate) &'a [&'a str]);

impl Display for OneOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{name}`")?;
        }
        Ok(())
    }
}

/// `` unknown {what} `{input}`, expected one of `a`, `b` (did you mean `a`?) ``.
pub(crate) fn unknown(what: &str, input: &str, valid: &[&str]) -> String {
    let mut message = format!("unknown {what} `{input}`, expected one of {}", OneOf(valid));
    if let Some(suggestion) = did_you_mean(input, valid.iter().copied()) {
        message.push_str(&format!(" (did you mean `{suggestion}`?)"));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_char_edits() {
        assert_eq!(edit_distance("consul", "consul"), 0);
        assert_eq!(edit_distance("consol", "consul"), 1);
        assert_eq!(edit_distance("regsitry", "registry"), 1);
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "etcd"), 4);
        assert_eq!(edit_distance("mdns", ""), 4);
    }

    #[test]
    fn suggests_only_close_candidates() {
        let registries = ["mdns", "memory", "consul", "etcd"];
        assert_eq!(did_you_mean("consol", registries), Some("consul"));
        assert_eq!(did_you_mean("Consul", registries), Some("consul"));
        assert_eq!(did_you_mean("etc", registries), Some("etcd"));
        assert_eq!(did_you_mean("zookeeper", registries), None);
        assert_eq!(did_you_mean("ttl_secs", ["ttl", "interval"]), None);
        assert_eq!(
            did_you_mean("intervall", ["ttl", "interval"]),
            Some("interval")
        );
    }

    #[test]
    fn unknown_lists_and_suggests() {
        assert_eq!(
            unknown("registry", "consol", &["mdns", "consul"]),
            "unknown registry `consol`, expected one of `mdns`, `consul` (did you mean `consul`?)"
        );
        assert_eq!(
            unknown("registry", "zk", &["mdns", "consul"]),
            "unknown registry `zk`, expected one of `mdns`, `consul`"
        );
    }

    #[test]
    fn errors_accumulate_in_order() {
        let mut errors = Errors::new();
        assert!(errors.is_empty());
        errors.at(Span::call_site(), "first");
        errors.at(Span::call_site(), "second");
        let all = errors.finish().expect_err("two errors");
        let messages: Vec<String> = all.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages, ["first", "second"]);
    }
}
