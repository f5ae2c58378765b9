//! Reads a `#[handlers]` impl block: its endpoints (`pub async fn`s) and its subscribers
//! (methods marked `#[subscribe(..)]`), keeping the spans errors point at.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, ImplItem, ImplItemFn, ItemImpl, Meta, Type, Visibility};

use crate::diag::Errors;
use crate::naming;
use crate::signature::{self, Inputs};
use crate::subscribe::args::{SubscribeArgs, SubscriberFn, subscriber};

/// An endpoint: `pub async fn method(&self, req: Request) -> Result<Response, E>`, or one of
/// the streaming shapes (see [`Streaming`]).
pub(crate) struct Endpoint {
    pub(crate) method: Ident,
    /// `None` for a unary endpoint.
    pub(crate) streaming: Option<Streaming>,
    pub(crate) request: Type,
    pub(crate) response: Type,
    /// The `E` of `Result<Response, E>`, when written out.
    pub(crate) error: Option<Type>,
    /// The method's doc comment, as text.
    pub(crate) doc: Option<String>,
}

/// The streaming shapes, by their arguments after `&self`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Streaming {
    /// `(req: Request, replies: Replies<Response>) -> Result<(), E>`.
    Server,
    /// `(requests: Requests<Request>) -> Result<Response, E>`.
    Client,
    /// `(requests: Requests<Request>, replies: Replies<Response>) -> Result<(), E>`.
    Bidirectional,
}

/// A method marked `#[subscribe(..)]`.
pub(crate) struct Subscriber {
    pub(crate) method: Ident,
    pub(crate) args: SubscribeArgs,
    pub(crate) function: SubscriberFn,
}

/// The impl block as written.
pub(crate) struct Block {
    /// The handler name go-micro prefixes endpoints with: the type's name.
    pub(crate) handler: Ident,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) subscribers: Vec<Subscriber>,
}

/// Whether `attr` is `#[subscribe(..)]` (or `#[rmicro::subscribe(..)]`).
fn is_subscribe(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "subscribe")
}

/// Reads `item`, taking the `#[subscribe]` attributes off its methods (they are `#[handlers]`'s
/// to read, and must not expand on their own). `None` when something is wrong, with every
/// problem recorded in `errors`.
pub(crate) fn parse(attr: TokenStream, item: &mut ItemImpl, errors: &mut Errors) -> Option<Block> {
    let before = errors.len();
    if !attr.is_empty() {
        errors.spanned(&attr, "`#[handlers]` takes no arguments");
    }
    if let Some((_, path, _)) = &item.trait_ {
        errors.spanned(
            path,
            "`#[handlers]` goes on an inherent impl block (`impl MyService { .. }`) or on an impl \
             of a handler trait generated from a proto service (`impl StudentServiceHandler for \
             MyService`), not on an impl of another trait",
        );
    }
    if !item.generics.params.is_empty() {
        errors.spanned(
            &item.generics,
            "`#[handlers]` does not support generic impl blocks: a service is one concrete type",
        );
    }
    let handler = handler_name(&item.self_ty, errors);
    let mut endpoints = Vec::new();
    let mut subscribers = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(function) = impl_item else {
            continue;
        };
        let (marks, others): (Vec<Attribute>, Vec<Attribute>) =
            function.attrs.drain(..).partition(is_subscribe);
        function.attrs = others;
        if marks.is_empty() {
            if matches!(function.vis, Visibility::Public(_)) && function.sig.asyncness.is_some() {
                endpoints.extend(endpoint(function, errors));
                function.attrs.push(signature::allow_unused_async());
            } else {
                unserved_endpoint(function, handler.as_ref(), errors);
            }
            continue;
        }
        function.attrs.push(signature::allow_unused_async());
        let signature = subscriber(&function.sig, true, errors);
        for mark in marks {
            let args = subscribe_args(&mark, errors);
            if let (Some(args), Some(signature)) = (args, &signature) {
                subscribers.push(Subscriber {
                    method: function.sig.ident.clone(),
                    args,
                    function: signature.clone(),
                });
            }
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Block {
        handler: handler?,
        endpoints,
        subscribers,
    })
}

/// The type's name: `StudentService` in `impl StudentService` or `impl crate::StudentService`.
fn handler_name(self_ty: &Type, errors: &mut Errors) -> Option<Ident> {
    if let Type::Path(path) = self_ty
        && let Some(last) = path.path.segments.last()
        && path.qself.is_none()
        && last.arguments.is_empty()
    {
        return Some(last.ident.clone());
    }
    errors.spanned(
        self_ty,
        "`#[handlers]` needs the service's struct by name: `impl MyService { .. }`",
    );
    None
}

fn subscribe_args(attr: &Attribute, errors: &mut Errors) -> Option<SubscribeArgs> {
    let tokens = match &attr.meta {
        Meta::List(list) => list.tokens.clone(),
        Meta::Path(_) => TokenStream::new(),
        Meta::NameValue(pair) => {
            errors.spanned(pair, "expected `#[subscribe(\"topic\")]`");
            return None;
        }
    };
    match SubscribeArgs::parse(tokens, attr.path().span(), errors) {
        Ok(args) => Some(args),
        Err(syntax) => {
            errors.push(syntax);
            None
        }
    }
}

/// A method with an endpoint's shape (`&self`, one argument, a `Result`) that is not a
/// `pub async fn` is an error: it would not be served, and its callers would get a 404 at run
/// time with nothing said at build time.
fn unserved_endpoint(function: &ImplItemFn, handler: Option<&Ident>, errors: &mut Errors) {
    let sig = &function.sig;
    let Inputs { receiver, args } = signature::inputs(sig);
    let streams = args.len() == 2 && signature::replies_item(&args[1].ty).is_some();
    let looks_like_one = receiver.is_some_and(signature::is_shared_self)
        && (args.len() == 1 || streams)
        && signature::result_ok(&sig.output).is_some();
    if !looks_like_one {
        return;
    }
    let public = matches!(function.vis, Visibility::Public(_));
    let missing = match (public, sig.asyncness.is_some()) {
        (false, false) => "neither `pub` nor `async`",
        (false, true) => "not `pub`",
        (true, false) => "not `async`",
        (true, true) => return,
    };
    let name = &sig.ident;
    let endpoint = handler.map_or_else(
        || format!("`{name}`"),
        |h| {
            format!(
                "`{}`",
                naming::endpoint_name(&h.to_string(), &name.to_string())
            )
        },
    );
    let span = match (&function.vis, &sig.asyncness) {
        (Visibility::Public(_) | Visibility::Inherited, None) => sig.fn_token.span,
        (Visibility::Inherited, Some(token)) => token.span,
        (vis, _) => vis.span(),
    };
    errors.at(
        span,
        format!(
            "`{name}` has an endpoint's shape (`&self`, one request, a `Result`) but is \
             {missing}, so it would not be served: write `pub async fn {name}` to serve it as \
             {endpoint}, or move it to another impl block if it is a helper"
        ),
    );
}

/// Reads `pub async fn name(&self, req: Request) -> Result<Response, E>`.
fn endpoint(function: &ImplItemFn, errors: &mut Errors) -> Option<Endpoint> {
    let sig = &function.sig;
    let name = &sig.ident;
    let shape = format!("`pub async fn {name}(&self, req: Request) -> Result<Response, E>`");
    let before = errors.len();
    signature::reject_generics(sig, "endpoints", errors);
    let Inputs { receiver, args } = signature::inputs(sig);
    match receiver {
        None => errors.at(
            signature::parens(sig),
            format!(
                "endpoint `{name}` must take `&self` and one request argument: {shape}; \
                 a `pub async fn` in a `#[handlers]` block is an endpoint, \
                 so helpers belong in another impl block"
            ),
        ),
        Some(r) if !signature::is_shared_self(r) => errors.spanned(
            r,
            format!(
                "endpoint `{name}` must take `&self`: calls are served concurrently on the \
                 shared service value"
            ),
        ),
        Some(_) => {}
    }
    let (streaming, request, streamed_response) = match args.as_slice() {
        [only] => match signature::requests_item(&only.ty) {
            Some(item) => (Some(Streaming::Client), Some(item.clone()), None),
            None => (None, Some((*only.ty).clone()), None),
        },
        [first, second] if signature::replies_item(&second.ty).is_some() => {
            let replies = signature::replies_item(&second.ty).cloned();
            match signature::requests_item(&first.ty) {
                Some(item) => (Some(Streaming::Bidirectional), Some(item.clone()), replies),
                None if signature::replies_item(&first.ty).is_some() => {
                    errors.spanned(
                        &first.ty,
                        format!(
                            "endpoint `{name}` takes one `Replies`, last: \
                             `(&self, req: Request, replies: Replies<Response>)`"
                        ),
                    );
                    (None, None, None)
                }
                None => (Some(Streaming::Server), Some((*first.ty).clone()), replies),
            }
        }
        [] => {
            if receiver.is_some() {
                errors.at(
                    signature::parens(sig),
                    format!(
                        "endpoint `{name}` must take one request argument after `&self`: {shape}"
                    ),
                );
            }
            (None, None, None)
        }
        [_, extra @ ..] => {
            errors.spanned(
                quote::quote!(#(#extra)*),
                format!(
                    "endpoint `{name}` takes one request argument, found {}: \
                     put the fields in one request type (or stream: \
                     `(&self, req: Request, replies: Replies<Response>)`, \
                     `(&self, requests: Requests<Request>)` or \
                     `(&self, requests: Requests<Request>, replies: Replies<Response>)`)",
                    args.len()
                ),
            );
            (None, None, None)
        }
    };
    let ok = signature::result_ok(&sig.output).cloned();
    if ok.is_none() {
        let shape = match streaming {
            Some(Streaming::Server | Streaming::Bidirectional) => {
                "a streaming endpoint that sends through `Replies` returns `Result<(), E>`"
                    .to_owned()
            }
            _ => shape.clone(),
        };
        let message = format!(
            "endpoint `{name}` must return `Result<Response, E>` where \
             `E: Into<rmicro::Error>`: {shape}"
        );
        match &sig.output {
            syn::ReturnType::Type(_, ty) => errors.spanned(ty, message),
            syn::ReturnType::Default => errors.spanned(signature::head(sig), message),
        }
    }
    let response = match (streamed_response, ok) {
        (Some(replies), Some(ok)) => {
            if !signature::is_unit(&ok) {
                errors.spanned(
                    &ok,
                    format!(
                        "endpoint `{name}` sends its replies through `Replies`, so it returns \
                         `Result<(), E>`, not a value"
                    ),
                );
            }
            Some(replies)
        }
        (None, ok) => ok,
        (Some(_), None) => None,
    };
    if errors.len() > before {
        return None;
    }
    Some(Endpoint {
        method: name.clone(),
        streaming,
        request: request?,
        response: response?,
        error: signature::result_err(&sig.output).cloned(),
        doc: doc_comment(&function.attrs),
    })
}

/// The text of `///` comments (`#[doc = "..."]`): one line each, the space after `///`
/// dropped, blank lines at either end trimmed; `None` without any.
pub(crate) fn doc_comment(attrs: &[syn::Attribute]) -> Option<String> {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .flat_map(|text| {
            text.split('\n')
                .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use quote::{ToTokens, quote};
    use syn::parse_quote;

    use super::*;
    use crate::subscribe::args::Payload;

    fn parse_block(
        attr: TokenStream,
        mut item: ItemImpl,
    ) -> (Option<Block>, ItemImpl, Vec<String>) {
        let mut errors = Errors::new();
        let block = parse(attr, &mut item, &mut errors);
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        };
        (block, item, messages)
    }

    #[test]
    fn doc_comments_become_text() {
        let f: ImplItemFn = parse_quote! {
            /// Looks a student up
            /// by name.
            ///
            #[doc = "  Indented stays indented."]
            pub async fn get(&self, req: R) -> Result<S> { Ok(S) }
        };
        assert_eq!(
            doc_comment(&f.attrs).as_deref(),
            Some("Looks a student up\nby name.\n\n Indented stays indented.")
        );
        let bare: ImplItemFn =
            parse_quote! { pub async fn get(&self, req: R) -> Result<S> { Ok(S) } };
        assert_eq!(doc_comment(&bare.attrs), None);
    }

    #[test]
    fn pub_async_fns_are_endpoints_and_marked_methods_subscribers() {
        let (block, item, errors) = parse_block(
            quote!(),
            parse_quote! {
                impl crate::StudentService {
                    pub async fn get_student(&self, req: StudentRequest) -> rmicro::Result<Student> { todo!() }
                    #[subscribe("go.micro.srv.message", queue = "q")]
                    #[doc = "kept"]
                    async fn on_message(&self, event: Event<Student>) -> rmicro::Result<()> { todo!() }
                    pub fn helper(&self) {}
                    async fn private(&self, x: u8) -> u8 { x }
                    pub(crate) async fn crate_visible(&self, x: u8) -> u8 { x }
                    pub const LIMIT: usize = 3;
                }
            },
        );
        assert!(errors.is_empty(), "{errors:?}");
        let block = block.expect("a block");
        assert_eq!(block.handler, "StudentService");
        let endpoints: Vec<String> = block
            .endpoints
            .iter()
            .map(|e| {
                let (m, q, r) = (&e.method, &e.request, &e.response);
                quote!(#m #q #r).to_string()
            })
            .collect();
        assert_eq!(endpoints, ["get_student StudentRequest Student"]);
        assert_eq!(block.subscribers.len(), 1);
        let subscriber = &block.subscribers[0];
        assert_eq!(subscriber.method, "on_message");
        assert!(matches!(&subscriber.function.payload, Payload::Event(_)));
        assert_eq!(
            subscriber
                .args
                .topic
                .as_ref()
                .map(syn::LitStr::value)
                .as_deref(),
            Some("go.micro.srv.message")
        );
        let emitted = item.to_token_stream().to_string();
        assert!(!emitted.contains("subscribe"), "{emitted}");
        assert!(emitted.contains("kept"), "{emitted}");
    }

    #[test]
    fn endpoint_shapes() {
        let (_, _, errors) = parse_block(
            quote!(),
            parse_quote! {
                impl S {
                    pub async fn new() -> Self { S }
                    pub async fn a(&mut self, r: R) -> Result<T, E> { todo!() }
                    pub async fn b(&self) -> Result<T, E> { todo!() }
                    pub async fn c(&self, r: R, extra: u8, more: u8) -> Result<T, E> { todo!() }
                    pub async fn d(&self, r: R) -> T { todo!() }
                    pub async fn e(&self, r: R) { }
                    pub async fn f<X>(&self, r: X) -> Result<T, E> { todo!() }
                }
            },
        );
        assert_eq!(
            errors,
            [
                "endpoint `new` must take `&self` and one request argument: \
                 `pub async fn new(&self, req: Request) -> Result<Response, E>`; a `pub async fn` \
                 in a `#[handlers]` block is an endpoint, so helpers belong in another impl block",
                "endpoint `new` must return `Result<Response, E>` where `E: Into<rmicro::Error>`: \
                 `pub async fn new(&self, req: Request) -> Result<Response, E>`",
                "endpoint `a` must take `&self`: calls are served concurrently on the shared \
                 service value",
                "endpoint `b` must take one request argument after `&self`: \
                 `pub async fn b(&self, req: Request) -> Result<Response, E>`",
                "endpoint `c` takes one request argument, found 3: put the fields in one request \
                 type (or stream: `(&self, req: Request, replies: Replies<Response>)`, \
                 `(&self, requests: Requests<Request>)` or \
                 `(&self, requests: Requests<Request>, replies: Replies<Response>)`)",
                "endpoint `d` must return `Result<Response, E>` where `E: Into<rmicro::Error>`: \
                 `pub async fn d(&self, req: Request) -> Result<Response, E>`",
                "endpoint `e` must return `Result<Response, E>` where `E: Into<rmicro::Error>`: \
                 `pub async fn e(&self, req: Request) -> Result<Response, E>`",
                "endpoints cannot be generic",
            ]
        );
    }

    #[test]
    fn stream_shapes() {
        let (block, _, errors) = parse_block(
            quote!(),
            parse_quote! {
                impl S {
                    pub async fn server(&self, r: R, out: Replies<T>) -> Result<(), E> { todo!() }
                    pub async fn client(&self, r: rmicro::Requests<R>) -> rmicro::Result<T> { todo!() }
                    pub async fn bidi(&self, r: Requests<R>, out: Replies<T>) -> Result<(), E> { todo!() }
                }
            },
        );
        assert_eq!(errors, Vec::<String>::new());
        let shapes: Vec<_> = block
            .expect("valid")
            .endpoints
            .iter()
            .map(|e| {
                let request = &e.request;
                let response = &e.response;
                (
                    e.streaming,
                    quote!(#request).to_string(),
                    quote!(#response).to_string(),
                )
            })
            .collect();
        assert_eq!(
            shapes,
            [
                (Some(Streaming::Server), "R".to_owned(), "T".to_owned()),
                (Some(Streaming::Client), "R".to_owned(), "T".to_owned()),
                (
                    Some(Streaming::Bidirectional),
                    "R".to_owned(),
                    "T".to_owned()
                ),
            ]
        );

        let (_, _, errors) = parse_block(
            quote!(),
            parse_quote! {
                impl S {
                    pub async fn returns_a_value(&self, r: R, out: Replies<T>) -> Result<T, E> { todo!() }
                    pub async fn replies_first(&self, out: Replies<T>, r: Replies<T>) -> Result<(), E> { todo!() }
                    pub async fn no_result(&self, r: Requests<R>, out: Replies<T>) { }
                }
            },
        );
        assert_eq!(
            errors,
            [
                "endpoint `returns_a_value` sends its replies through `Replies`, so it returns \
                 `Result<(), E>`, not a value",
                "endpoint `replies_first` takes one `Replies`, last: \
                 `(&self, req: Request, replies: Replies<Response>)`",
                "endpoint `no_result` must return `Result<Response, E>` where \
                 `E: Into<rmicro::Error>`: a streaming endpoint that sends through `Replies` \
                 returns `Result<(), E>`",
            ]
        );
    }

    #[test]
    fn an_endpoint_that_would_not_be_served() {
        let (block, _, errors) = parse_block(
            quote!(),
            parse_quote! {
                impl StudentService {
                    pub fn get_student(&self, r: R) -> Result<T, E> { todo!() }
                    async fn find(&self, r: R) -> rmicro::Result<T> { todo!() }
                    pub(crate) async fn list(&self, r: R) -> Result<T, E> { todo!() }
                    fn grade(&self, r: R) -> Result<T, E> { todo!() }
                    fn helper(&self) -> Result<T, E> { todo!() }
                    fn not_self(r: R) -> Result<T, E> { todo!() }
                    fn not_a_result(&self, r: R) -> T { todo!() }
                    fn mutates(&mut self, r: R) -> Result<T, E> { todo!() }
                }
            },
        );
        assert!(block.is_none());
        let advice = |name: &str, missing: &str, endpoint: &str| {
            format!(
                "`{name}` has an endpoint's shape (`&self`, one request, a `Result`) but is \
                 {missing}, so it would not be served: write `pub async fn {name}` to serve it as \
                 `StudentService.{endpoint}`, or move it to another impl block if it is a helper"
            )
        };
        assert_eq!(
            errors,
            [
                advice("get_student", "not `async`", "GetStudent"),
                advice("find", "not `pub`", "Find"),
                advice("list", "not `pub`", "List"),
                advice("grade", "neither `pub` nor `async`", "Grade"),
            ]
        );
    }

    #[test]
    fn the_block_itself() {
        let (block, _, errors) = parse_block(
            quote!(name = "x"),
            parse_quote!(
                impl<T> Tr for S<T> {}
            ),
        );
        assert!(block.is_none());
        assert_eq!(
            errors,
            [
                "`#[handlers]` takes no arguments",
                "`#[handlers]` goes on an inherent impl block (`impl MyService { .. }`) or on an \
                 impl of a handler trait generated from a proto service (`impl \
                 StudentServiceHandler for MyService`), not on an impl of another trait",
                "`#[handlers]` does not support generic impl blocks: a service is one concrete type",
                "`#[handlers]` needs the service's struct by name: `impl MyService { .. }`",
            ]
        );
    }

    #[test]
    fn subscribe_marks_are_always_taken_off() {
        let (block, item, errors) = parse_block(
            quote!(),
            parse_quote! {
                impl S {
                    #[rmicro::subscribe]
                    async fn on(&self, x: X) -> Result<()> { todo!() }
                }
            },
        );
        assert!(block.is_none());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("missing topic"), "{errors:?}");
        assert!(!item.to_token_stream().to_string().contains("subscribe"));
    }
}
