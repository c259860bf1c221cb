//! `#[devenv_fixture::test]`: a thin shim, as `#[sqlx::test]` is. It turns the function into a
//! plain `#[test]` that calls an ordinary function of `devenv_fixture::runner`, where all the
//! work happens (and can be read, tested and called without the macro).
//!
//! The test's signature chooses what it is handed:
//!
//! | signature | runner |
//! | --- | --- |
//! | `async fn t(db: TestDb)` | `run_with_db`: a tokio runtime, a `devenv_fixture::TestDb` |
//! | `async fn t(client: Client)` | `run_with_client`: a `tokio_postgres::Client` on a fresh database |
//! | `async fn t()` | `run_async`: just the runtime |
//! | `fn t(db: TestDb)` | `run_blocking_with_db`: a `devenv_fixture::blocking::TestDb` |
//! | `fn t(client: Client)` | `run_blocking_with_client`: a `postgres::Client` |
//!
//! The parameter's type is matched by its last path segment (`TestDb`, `Client`); the compiler
//! checks the rest. The return type is kept: `()` or a `Result`, whose `Err` counts as a failure
//! (the database is then kept, as for a panic).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{FnArg, ItemFn, Type};

/// Runs an async or blocking test against a database of its own, cloned from the project's
/// template (schema + seed). See the crate documentation for the accepted signatures.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = TokenStream2::from(args);
    let item = syn::parse_macro_input!(item as ItemFn);
    match expand(&args, item) {
        Ok(tokens) | Err(tokens) => tokens.into(),
    }
}

fn error(span: Span, message: &str) -> TokenStream2 {
    syn::Error::new(span, message).to_compile_error()
}

fn expand(args: &TokenStream2, mut item: ItemFn) -> Result<TokenStream2, TokenStream2> {
    if !args.is_empty() {
        return Err(error(
            args.span(),
            "#[devenv_fixture::test] takes no arguments: the test's parameter (`db: TestDb` or `client: Client`) chooses what it gets, and devenv.yaml says what the database holds",
        ));
    }
    let sig = &item.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(error(
            sig.generics.span(),
            "a #[devenv_fixture::test] function cannot be generic",
        ));
    }
    let is_async = sig.asyncness.is_some();
    let param = match sig.inputs.len() {
        0 => None,
        1 => Some(param_kind(&sig.inputs[0])?),
        _ => {
            return Err(error(
                sig.inputs.span(),
                "a #[devenv_fixture::test] function takes one parameter: `db: TestDb` or `client: Client`",
            ))
        }
    };
    let runner = match (is_async, param) {
        (true, None) => quote!(run_async),
        (true, Some(Param::Db)) => quote!(run_with_db),
        (true, Some(Param::Client)) => quote!(run_with_client),
        (false, Some(Param::Db)) => quote!(run_blocking_with_db),
        (false, Some(Param::Client)) => quote!(run_blocking_with_client),
        (false, None) => {
            return Err(error(
                sig.ident.span(),
                "a blocking #[devenv_fixture::test] function takes `db: devenv_fixture::blocking::TestDb` or `client: postgres::Client`",
            ))
        }
    };
    // The outer #[test] keeps the attributes (#[should_panic], docs, cfgs); the inner function
    // is the user's, unchanged, so errors in its body point where they should.
    let attrs = std::mem::take(&mut item.attrs);
    let name = item.sig.ident.clone();
    let output = item.sig.output.clone();
    let span = name.span();
    let call = quote_spanned! {span=>
        ::devenv_fixture::runner::#runner(
            ::devenv_fixture::runner::TestInfo {
                name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
            },
            #name,
        )
    };
    Ok(quote! {
        #(#attrs)*
        #[::core::prelude::v1::test]
        fn #name() #output {
            #item
            #call
        }
    })
}

#[derive(Clone, Copy)]
enum Param {
    Db,
    Client,
}

fn param_kind(arg: &FnArg) -> Result<Param, TokenStream2> {
    let FnArg::Typed(typed) = arg else {
        return Err(error(arg.span(), "a test function has no `self`"));
    };
    let last = match &*typed.ty {
        Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    };
    match last.as_deref() {
        Some("TestDb") => Ok(Param::Db),
        Some("Client") => Ok(Param::Client),
        _ => Err(error(
            typed.ty.span(),
            "expected `TestDb` (devenv_fixture::TestDb, or devenv_fixture::blocking::TestDb in a blocking test) or `Client` (tokio_postgres::Client, or postgres::Client in a blocking test)",
        )),
    }
}
