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
//! | `async fn t(pool: PgPool)`, `PgConnection`, `PoolConnection<Postgres>` | `run_with_sqlx` (feature `sqlx`): sqlx's types, as `#[sqlx::test]` hands them |
//!
//! Arguments, for sqlx tests: `fixtures("users", "../data/posts.sql")` runs sqlx fixture
//! scripts on the test's database before it, found as `#[sqlx::test]` finds them: a name
//! without `.sql` is `fixtures/<name>.sql` beside the test's source file, a path ending in
//! `.sql` is relative to that file (both read at compile time). `migrations` and `migrator`
//! are refused: devenv.yaml (`schema`, `migrations:`, `seed`) builds every test's database.
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

/// The paths of `fixtures("a", "b.sql")`, as `include_str!` arguments.
fn fixtures(args: &TokenStream2) -> Result<Vec<(String, String)>, TokenStream2> {
    if args.is_empty() {
        return Ok(Vec::new());
    }
    let parsed: syn::Meta = syn::parse2(args.clone()).map_err(|e| e.to_compile_error())?;
    let syn::Meta::List(list) = &parsed else {
        return Err(error(args.span(), USAGE));
    };
    if list.path.is_ident("migrations") || list.path.is_ident("migrator") {
        return Err(error(args.span(), NO_MIGRATOR));
    }
    if !list.path.is_ident("fixtures") {
        return Err(error(args.span(), USAGE));
    }
    let names = list
        .parse_args_with(
            syn::punctuated::Punctuated::<syn::LitStr, syn::Token![,]>::parse_terminated,
        )
        .map_err(|e| error(e.span(), USAGE))?;
    Ok(names
        .iter()
        .map(|lit| {
            let name = lit.value();
            let path = if std::path::Path::new(&name)
                .extension()
                .is_some_and(|e| e == "sql")
            {
                name.clone()
            } else {
                format!("fixtures/{name}.sql")
            };
            (name, path)
        })
        .collect())
}

const USAGE: &str = "#[devenv_fixture::test] takes no arguments but `fixtures(\"name\", \"path/file.sql\", ...)` (for sqlx tests): the test's parameter chooses what it gets, and devenv.yaml says what the database holds";
const NO_MIGRATOR: &str = "`migrations` and `migrator` are #[sqlx::test]'s; with #[devenv_fixture::test] devenv.yaml builds the database (`schema`, `migrations: <dir>`, `seed`), and the app's own migrator finds it all applied";

fn expand(args: &TokenStream2, mut item: ItemFn) -> Result<TokenStream2, TokenStream2> {
    let args_ts = args.clone();
    // `migrations = false` is a name-value pair, not a list.
    if let Ok(syn::Meta::NameValue(nv)) = syn::parse2::<syn::Meta>(args_ts) {
        let message = if nv.path.is_ident("migrations") || nv.path.is_ident("migrator") {
            NO_MIGRATOR
        } else {
            USAGE
        };
        return Err(error(args.span(), message));
    }
    let fixtures = fixtures(args)?;
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
    if !fixtures.is_empty() && !matches!(param, Some(Param::Sqlx(_))) {
        return Err(error(
            args.span(),
            "`fixtures(...)` is for sqlx tests (a `PgPool`, `PgConnection` or `PoolConnection<Postgres>` parameter)",
        ));
    }
    let runner = match (is_async, param.clone()) {
        (true, None) => quote!(run_async),
        (true, Some(Param::Db)) => quote!(run_with_db),
        (true, Some(Param::Client)) => quote!(run_with_client),
        (true, Some(Param::Sqlx(_))) => quote!(run_with_sqlx),
        (false, Some(Param::Sqlx(_))) => {
            return Err(error(
                sig.ident.span(),
                "a sqlx #[devenv_fixture::test] function is async",
            ))
        }
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
    let info = quote_spanned! {span=>
        ::devenv_fixture::runner::TestInfo {
            name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
            manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
        }
    };
    let call = if let Some(Param::Sqlx(ty)) = param {
        let scripts = fixtures
            .iter()
            .map(|(name, path)| quote!((#name, ::core::include_str!(#path))));
        quote_spanned! {span=>
            ::devenv_fixture::runner::#runner::<#ty, _, _>(#info, &[#(#scripts),*], #name)
        }
    } else {
        quote_spanned! {span=>
            ::devenv_fixture::runner::#runner(#info, #name)
        }
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

#[derive(Clone)]
enum Param {
    Db,
    Client,
    /// sqlx's `PgPool`, `PgConnection`, `PoolConnection<Postgres>`: the type as written.
    Sqlx(Box<Type>),
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
        Some("PgPool" | "PgConnection" | "PoolConnection") => Ok(Param::Sqlx(typed.ty.clone())),
        _ => Err(error(
            typed.ty.span(),
            "expected `TestDb` (devenv_fixture::TestDb, or devenv_fixture::blocking::TestDb in a blocking test), `Client` (tokio_postgres::Client, or postgres::Client in a blocking test), or with feature `sqlx` a `PgPool`, `PgConnection` or `PoolConnection<Postgres>`",
        )),
    }
}
