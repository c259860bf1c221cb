//! The real binary against a real PostgreSQL 15 that requires TLS as RDS with
//! `rds.force_ssl` does (`devenv-test-tls`: `ssl = on`, a certificate from a test CA made in
//! the test, `hostssl` lines only and `hostnossl ... reject`): `db setup` in every mode and
//! with `PGSSLMODE`/`PGSSLROOTCERT`, each refusal's message, a client-certificate login,
//! `--target prod`'s verify-full default, `up` with `backend: external` on it (reload,
//! `snapshot save`/`restore`), `doctor`; and `prefer` against a server without TLS.

mod support;

use std::process::Output;

use devenv_test_tls::{Access, TlsServer, PASSWORD};
use support::{psql_count, stderr, var, wait_for_column, Project};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// `devenv db setup --url URL --yes`, with `env` set, HOME an empty directory (no
/// `~/.postgresql`), no PGSSL* from the caller.
fn setup(project: &Project, url: &str, env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = project.command(&["db", "setup", "--url", url, "--yes"]);
    cmd.env("HOME", home.path());
    for var in [
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PROD_CONNECTION_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    let text = stderr(out);
    assert!(out.status.success(), "{what}: {text}");
    assert!(
        !text.contains(PASSWORD),
        "{what}: the password leaked: {text}"
    );
    text
}

fn failed(out: &Output, what: &str) -> String {
    let text = stderr(out);
    assert!(!out.status.success(), "{what} succeeded: {text}");
    assert!(
        !text.contains(PASSWORD),
        "{what}: the password leaked: {text}"
    );
    assert!(!text.contains("panicked"), "{what}: {text}");
    text
}

/// A runtime, a server that requires TLS, and a project (the runtime outlives the server's
/// tasks).
fn world() -> (tokio::runtime::Runtime, TlsServer, Project) {
    let rt = runtime();
    let tls = rt.block_on(TlsServer::start(Access::TlsOnly));
    (rt, tls, Project::native())
}

/// The users of database `cruddur` on `tls`, counted by psql over verify-full.
fn users(tls: &TlsServer) -> String {
    let url = tls.url(
        "cruddur",
        &format!("sslmode=verify-full&sslrootcert={}", tls.pki.ca.display()),
    );
    psql_count(&url, "SELECT count(*) FROM users")
}

#[test]
fn db_setup_in_every_mode_on_a_server_that_requires_tls() {
    let (rt, tls, project) = world();
    let ca = format!("sslrootcert={}", tls.pki.ca.display());

    let out = setup(
        &project,
        &tls.url("cruddur", &format!("sslmode=verify-full&{ca}")),
        &[],
    );
    let text = ok(&out, "verify-full with the CA");
    assert!(
        text.contains("sslmode=verify-full&sslrootcert="),
        "the TLS parameters are shown: {text}"
    );
    assert_eq!(users(&tls), "3");
    ok(
        &setup(&project, &tls.url("cruddur", "sslmode=require"), &[]),
        "require, no CA",
    );

    let text = failed(
        &setup(&project, &tls.url("cruddur", "sslmode=disable"), &[]),
        "disable",
    );
    assert!(
        text.contains("the server requires TLS (pg_hba has no entry without encryption): add `?sslmode=require` or `verify-full`"),
        "{text}"
    );
    let other = format!("sslrootcert={}", tls.pki.other_ca.display());
    let text = failed(
        &setup(
            &project,
            &tls.url("cruddur", &format!("sslmode=verify-full&{other}")),
            &[],
        ),
        "a wrong CA",
    );
    assert!(text.contains("the certificate of localhost is not trusted: it was issued by `O=devenv tests,CN=devenv test CA`"), "{text}");
    assert!(
        text.contains(&format!("sslrootcert={}", tls.pki.other_ca.display())),
        "{text}"
    );
    let text = failed(
        &setup(
            &project,
            &tls.url_at("127.0.0.1", "cruddur", &format!("sslmode=verify-full&{ca}")),
            &[],
        ),
        "a wrong host name",
    );
    assert!(
        text.contains("the certificate of 127.0.0.1 is for localhost, not 127.0.0.1"),
        "{text}"
    );

    // From the environment, as libpq takes them.
    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", tls.pki.ca.to_str().unwrap()),
    ];
    let text = ok(
        &setup(&project, &tls.url("cruddur", ""), &env),
        "PGSSLMODE and PGSSLROOTCERT",
    );
    assert!(text.contains("sslmode=verify-full"), "{text}");
    let text = failed(
        &setup(
            &project,
            &tls.url("cruddur", ""),
            &[("PGSSLMODE", "disable")],
        ),
        "PGSSLMODE=disable",
    );
    assert!(text.contains("the server requires TLS"), "{text}");
    let text = failed(
        &setup(
            &project,
            &tls.url("cruddur", ""),
            &[
                ("PGSSLMODE", "verify-full"),
                ("PGSSLROOTCERT", tls.pki.other_ca.to_str().unwrap()),
            ],
        ),
        "PGSSLROOTCERT naming the wrong CA",
    );
    assert!(text.contains("is not trusted"), "{text}");
    rt.block_on(tls.stop());
}

#[test]
fn db_setup_with_a_client_certificate_and_with_a_missing_ca_file() {
    let (rt, tls, project) = world();
    // A client-certificate login (`trust clientcert=verify-full`): no password at all; the
    // key's path may be shown, never its contents.
    let out = setup(&project, &tls.cert_url("cruddur"), &[]);
    let text = ok(&out, "a client certificate");
    let key = std::fs::read_to_string(&tls.pki.client_key).unwrap();
    assert!(
        key.lines().skip(1).take(2).all(|line| !text.contains(line)),
        "{text}"
    );
    assert_eq!(users(&tls), "3");
    // A missing CA file is configuration: exit 2, before any connection.
    let out = setup(
        &project,
        &tls.url(
            "cruddur",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        &[],
    );
    let text = failed(&out, "a missing CA file");
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("sslrootcert /nonexistent/ca.pem does not exist"),
        "{text}"
    );
    rt.block_on(tls.stop());
}

#[test]
fn target_prod_verifies_in_full_unless_the_url_says_otherwise() {
    let rt = runtime();
    let tls = rt.block_on(TlsServer::start(Access::TlsOnly));
    let project = Project::native();
    let home = tempfile::tempdir().unwrap();
    let prod = |env: &[(&str, &str)], url: &str| {
        let mut cmd = project.command(&["db", "setup", "--target", "prod", "--yes"]);
        cmd.env("HOME", home.path()).env("PROD_CONNECTION_URL", url);
        for var in ["PGSSLMODE", "PGSSLROOTCERT"] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied()).output().unwrap()
    };
    // Nothing said: verify-full, and localhost has no root to be checked against.
    let text = failed(&prod(&[], &tls.url("cruddur", "")), "prod without a root");
    assert!(
        text.contains("sslmode=verify-full needs a root certificate to check localhost"),
        "{text}"
    );
    let text = ok(
        &prod(
            &[("PGSSLROOTCERT", tls.pki.ca.to_str().unwrap())],
            &tls.url("cruddur", ""),
        ),
        "prod with PGSSLROOTCERT",
    );
    assert!(
        text.contains("on prod (postgresql://postgres:****@localhost:"),
        "{text}"
    );
    assert!(text.contains("sslmode=verify-full"), "{text}");
    // The URL's word wins.
    ok(
        &prod(&[], &tls.url("cruddur", "sslmode=require")),
        "prod with sslmode=require",
    );
    rt.block_on(tls.stop());
}

#[test]
fn up_on_an_external_server_that_requires_tls_reloads_and_snapshots() {
    let rt = runtime();
    let tls = rt.block_on(TlsServer::start(Access::TlsOnly));
    let mut project = Project::native();
    project.backend = Some("external");
    let server_url = tls.url(
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={}", tls.pki.ca.display()),
    );
    let env = [
        ("DEVENV_URL", server_url.as_str()),
        ("DEVENV_DATABASE", "tls_app"),
    ];
    let mut up = project.spawn_up_with(&env);
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    // The exported URL keeps the TLS parameters: psql (libpq) connects with it as it is.
    assert!(
        url.contains("/tls_app?sslmode=verify-full&sslrootcert="),
        "{url}"
    );
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "3");
    assert_eq!(
        psql_count(
            &url,
            "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ),
        "true"
    );
    // A save reloads, over TLS.
    project.add_users_column("bio");
    wait_for_column(&up, &url, "bio");
    // snapshot save / restore on it.
    let out = project
        .command(&["snapshot", "save", "before"])
        .envs(env)
        .output()
        .unwrap();
    ok(&out, "snapshot save");
    psql_count(&url, "TRUNCATE users CASCADE");
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "0");
    let out = project
        .command(&["snapshot", "restore", "before"])
        .envs(env)
        .output()
        .unwrap();
    ok(&out, "snapshot restore");
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "3");
    // doctor checks the server with its TLS settings.
    let out = project.command(&["doctor"]).envs(env).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(text.contains("answers"), "{text}");
    up.stop();
    // doctor on the same server refused for want of TLS says why.
    let plain = tls.url("postgres", "sslmode=disable");
    let out = project
        .command(&["doctor"])
        .env("DEVENV_URL", &plain)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(text.contains("the server requires TLS"), "{text}");
    rt.block_on(tls.stop());
}

#[test]
fn prefer_still_connects_to_a_server_without_tls() {
    let rt = runtime();
    let plain = rt
        .block_on(devenv_server::native::TempServer::start(PASSWORD))
        .expect("a native PostgreSQL");
    let project = Project::native();
    let base = format!(
        "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/cruddur",
        plain.server().port()
    );
    ok(&setup(&project, &base, &[]), "no sslmode (prefer)");
    ok(
        &setup(&project, &format!("{base}?sslmode=prefer"), &[]),
        "sslmode=prefer",
    );
    assert_eq!(psql_count(&base, "SELECT count(*) FROM users"), "3");
    let text = failed(
        &setup(&project, &format!("{base}?sslmode=require"), &[]),
        "require on a server without TLS",
    );
    assert!(
        text.contains("does not offer TLS, and sslmode=require requires it"),
        "{text}"
    );
    rt.block_on(plain.stop());
}
