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
//! | `async fn t(pool: PgPool)`, `PgConnection`, `PoolConnection<Postgres>` | `run_with_sqlx` (feature `sqlx`, or `sqlx-0-9` for sqlx 0.9): sqlx's types, as `#[sqlx::test]` hands them |
//! | `fn t(conn: PgConnection)` | `run_blocking_with_diesel` (feature `diesel`): a `diesel::PgConnection` |
//! | `async fn t(conn: AsyncPgConnection)` | `run_with_diesel_async` (feature `diesel-async`): a `diesel_async::AsyncPgConnection` |
//!
//! Arguments, for sqlx tests, as `#[sqlx::test]` takes them:
//! - `fixtures("users", "../data/posts.sql")`: sqlx fixture scripts on the test's database,
//!   found as `#[sqlx::test]` finds them: a name without `.sql` is `fixtures/<name>.sql` beside
//!   the test's source file, a path ending in `.sql` is relative to that file (both read at
//!   compile time);
//! - `migrations = false`: an empty database instead of devenv.yaml's (`schema`,
//!   `migrations:`, `seed`); `migrations = "dir"`: what `sqlx::migrate!("dir")` leaves;
//!   `migrator = "path::TO::MIGRATOR"`: what that `Migrator` leaves.
//!
//! Each distinct set is built once into a template of its own, and every test pays a clone.
//!
//! The parameter's type is matched by its last path segment (`TestDb`, `Client`); the compiler
//! checks the rest. A `PgConnection` is sqlx's in an async test and diesel's in a blocking one
//! (sqlx's is async, diesel's blocking); a path starting `sqlx::` or `diesel::` says which. The return type is kept: `()` or a `Result`, whose `Err` counts as a failure
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

/// What a sqlx test's attribute asks for, as `#[sqlx::test(...)]` takes it.
#[derive(Default)]
struct Args {
    /// `fixtures("a", "b.sql")`: paths relative to the test's file, as `include_str!` takes them.
    fixtures: Vec<String>,
    /// `migrations = false`, `migrations = "dir"` or `migrator = "path"`, as the runner's
    /// `Migrations` value.
    migrations: Option<TokenStream2>,
    /// Where the first argument is, for errors about the arguments as a whole.
    span: Option<Span>,
}

fn parse_args(args: &TokenStream2) -> Result<Args, TokenStream2> {
    let mut parsed = Args::default();
    if args.is_empty() {
        return Ok(parsed);
    }
    let metas = syn::parse::Parser::parse2(
        syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
        args.clone(),
    )
    .map_err(|e| error(e.span(), USAGE))?;
    parsed.span = Some(args.span());
    for meta in metas {
        match &meta {
            syn::Meta::List(list) if list.path.is_ident("fixtures") => {
                let names = list
                    .parse_args_with(
                        syn::punctuated::Punctuated::<syn::LitStr, syn::Token![,]>::parse_terminated,
                    )
                    .map_err(|e| error(e.span(), FIXTURES))?;
                parsed.fixtures.extend(names.iter().map(|lit| {
                    let name = lit.value();
                    if std::path::Path::new(&name)
                        .extension()
                        .is_some_and(|e| e == "sql")
                    {
                        name
                    } else {
                        format!("fixtures/{name}.sql")
                    }
                }));
            }
            syn::Meta::NameValue(nv) if nv.path.is_ident("migrations") => {
                let tokens = match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Bool(b),
                        ..
                    }) if !b.value => quote!(::devenv_fixture::runner::Migrations::None),
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(dir),
                        ..
                    }) => quote! {
                        ::devenv_fixture::runner::Migrations::Migrator({
                            static MIGRATOR: ::sqlx::migrate::Migrator = ::sqlx::migrate!(#dir);
                            &MIGRATOR
                        })
                    },
                    other => return Err(error(other.span(), MIGRATIONS)),
                };
                set_migrations(&mut parsed, tokens, meta.span())?;
            }
            syn::Meta::NameValue(nv) if nv.path.is_ident("migrator") => {
                let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(path),
                    ..
                }) = &nv.value
                else {
                    return Err(error(nv.value.span(), MIGRATOR));
                };
                let path: syn::Path = path
                    .parse()
                    .map_err(|e| error(path.span(), &format!("{MIGRATOR}: {e}")))?;
                set_migrations(
                    &mut parsed,
                    quote!(::devenv_fixture::runner::Migrations::Migrator(&#path)),
                    meta.span(),
                )?;
            }
            _ if meta.path().is_ident("migrator") => return Err(error(meta.span(), MIGRATOR)),
            _ if meta.path().is_ident("migrations") => return Err(error(meta.span(), MIGRATIONS)),
            _ if meta.path().is_ident("fixtures") => return Err(error(meta.span(), FIXTURES)),
            _ => return Err(error(meta.span(), USAGE)),
        }
    }
    Ok(parsed)
}

fn set_migrations(args: &mut Args, tokens: TokenStream2, span: Span) -> Result<(), TokenStream2> {
    if args.migrations.is_some() {
        return Err(error(
            span,
            "give one of `migrations = false`, `migrations = \"dir\"` and `migrator = \"path\"`",
        ));
    }
    args.migrations = Some(tokens);
    Ok(())
}

const USAGE: &str = "#[devenv_fixture::test] takes, for sqlx tests, #[sqlx::test]'s arguments: `fixtures(\"name\", \"path/file.sql\", ...)`, `migrations = false`, `migrations = \"dir\"`, `migrator = \"path::TO::MIGRATOR\"`; otherwise none: the test's parameter chooses what it gets, and devenv.yaml says what the database holds";
const FIXTURES: &str = "write `fixtures(\"name\", \"path/file.sql\", ...)`: a name is `fixtures/<name>.sql` beside the test's file, a path ending in `.sql` is relative to it";
const MIGRATIONS: &str = "write `migrations = false` (an empty database) or `migrations = \"dir\"` (what sqlx::migrate!(\"dir\") leaves); without it the database is devenv.yaml's (`schema`, `migrations:`, `seed`)";
const MIGRATOR: &str = "write `migrator = \"path::TO::MIGRATOR\"`: a `static sqlx::migrate::Migrator` the database is built with, instead of devenv.yaml's files";

fn expand(args: &TokenStream2, mut item: ItemFn) -> Result<TokenStream2, TokenStream2> {
    let parsed = parse_args(args)?;
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
        1 => Some(param_kind(&sig.inputs[0], is_async)?),
        _ => {
            return Err(error(
                sig.inputs.span(),
                "a #[devenv_fixture::test] function takes one parameter: `db: TestDb` or `client: Client`",
            ))
        }
    };
    if let Some(span) = parsed.span {
        if !matches!(param, Some(Param::Sqlx(_))) {
            return Err(error(
                span,
                "`fixtures(...)`, `migrations` and `migrator` are for sqlx tests (a `PgPool`, `PgConnection` or `PoolConnection<Postgres>` parameter)",
            ));
        }
    }
    let runner = runner(is_async, param.as_ref(), sig.ident.span())?;
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
        let scripts = parsed
            .fixtures
            .iter()
            .map(|path| quote!((#path, ::core::include_str!(#path))));
        let migrations = parsed
            .migrations
            .unwrap_or_else(|| quote!(::devenv_fixture::runner::Migrations::Project));
        quote_spanned! {span=>
            ::devenv_fixture::runner::#runner::<#ty, _, _>(
                #info,
                ::devenv_fixture::runner::SqlxArgs {
                    file: ::core::file!(),
                    fixtures: &[#(#scripts),*],
                    migrations: #migrations,
                },
                #name,
            )
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

/// The runner function a test of this kind calls (see the table in the crate's docs).
fn runner(is_async: bool, param: Option<&Param>, span: Span) -> Result<TokenStream2, TokenStream2> {
    Ok(match (is_async, param) {
        (true, None) => quote!(run_async),
        (true, Some(Param::Db)) => quote!(run_with_db),
        (true, Some(Param::Client)) => quote!(run_with_client),
        (true, Some(Param::Sqlx(_))) => quote!(run_with_sqlx),
        (false, Some(Param::Sqlx(_))) => {
            return Err(error(
                span,
                "a sqlx #[devenv_fixture::test] function is async",
            ))
        }
        (false, Some(Param::Diesel)) => quote!(run_blocking_with_diesel),
        (true, Some(Param::Diesel)) => {
            return Err(error(
                span,
                "diesel's `PgConnection` is blocking: make the test a plain `fn`, or take diesel_async's `AsyncPgConnection` in an async test",
            ))
        }
        (true, Some(Param::DieselAsync)) => quote!(run_with_diesel_async),
        (false, Some(Param::DieselAsync)) => {
            return Err(error(
                span,
                "an `AsyncPgConnection` #[devenv_fixture::test] function is async (or take diesel's blocking `PgConnection`)",
            ))
        }
        (false, Some(Param::Db)) => quote!(run_blocking_with_db),
        (false, Some(Param::Client)) => quote!(run_blocking_with_client),
        (false, None) => {
            return Err(error(
                span,
                "a blocking #[devenv_fixture::test] function takes `db: devenv_fixture::blocking::TestDb`, `client: postgres::Client` or, with feature `diesel`, `conn: PgConnection`",
            ))
        }
    })
}

#[derive(Clone)]
enum Param {
    Db,
    Client,
    /// sqlx's `PgPool`, `PgConnection`, `PoolConnection<Postgres>`: the type as written.
    Sqlx(Box<Type>),
    /// diesel's blocking `PgConnection`.
    Diesel,
    /// diesel_async's `AsyncPgConnection`.
    DieselAsync,
}

fn param_kind(arg: &FnArg, is_async: bool) -> Result<Param, TokenStream2> {
    let FnArg::Typed(typed) = arg else {
        return Err(error(arg.span(), "a test function has no `self`"));
    };
    let (first, last) = match &*typed.ty {
        Type::Path(path) => (
            path.path.segments.first().map(|s| s.ident.to_string()),
            path.path.segments.last().map(|s| s.ident.to_string()),
        ),
        _ => (None, None),
    };
    match (first.as_deref(), last.as_deref()) {
        (_, Some("TestDb")) => Ok(Param::Db),
        (_, Some("Client")) => Ok(Param::Client),
        (Some("diesel"), Some("PgConnection")) => Ok(Param::Diesel),
        (Some("sqlx"), Some("PgConnection")) => Ok(Param::Sqlx(typed.ty.clone())),
        (_, Some("PgConnection")) if !is_async => Ok(Param::Diesel),
        (_, Some("AsyncPgConnection")) => Ok(Param::DieselAsync),
        (_, Some("PgPool" | "PgConnection" | "PoolConnection")) => {
            Ok(Param::Sqlx(typed.ty.clone()))
        }
        _ => Err(error(
            typed.ty.span(),
            "expected `TestDb` (devenv_fixture::TestDb, or devenv_fixture::blocking::TestDb in a blocking test), `Client` (tokio_postgres::Client, or postgres::Client in a blocking test), with feature `sqlx` a `PgPool`, `PgConnection` or `PoolConnection<Postgres>` (async), with feature `diesel` a `PgConnection` (blocking), or with feature `diesel-async` an `AsyncPgConnection`",
        )),
    }
}
