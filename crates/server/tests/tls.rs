//! `devenv_server::tls` against a real PostgreSQL 15 that requires TLS as RDS with
//! `rds.force_ssl` does (`hostssl` lines only, `hostnossl ... reject`), its certificates from
//! a test CA made in the test (`devenv-test-tls`), and against a plain one: every `sslmode`,
//! `sslrootcert` as a file and as `system`, `PGSSLMODE`/`PGSSLROOTCERT`, a client-certificate
//! login, and the message of each refusal.

use std::path::Path;

use devenv_server::native::TempServer;
use devenv_server::tls::Why;
use devenv_server::{ConnectError, Server};
use devenv_test_tls::{Access, TlsServer, CERT_USER, PASSWORD};

fn parse(url: &str) -> Server {
    Server::parse(url, |_| None).expect("a test URL").0
}

fn parse_env(url: &str, env: &[(&str, &str)]) -> Server {
    Server::parse(url, |name| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("a test URL")
    .0
}

/// Connects and asks the server whether the session is encrypted.
async fn ssl_in_use(server: &Server) -> Result<bool, ConnectError> {
    let (client, connection) = server.connect("postgres").await?;
    let task = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    drop(client);
    let _ = task.await;
    Ok(row.get(0))
}

async fn refused(server: &Server) -> ConnectError {
    match ssl_in_use(server).await {
        Ok(ssl) => panic!("{server:?} connected (ssl {ssl}), expected a refusal"),
        Err(e) => e,
    }
}

fn root(path: &Path) -> String {
    format!("sslrootcert={}", path.display())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mode_against_a_server_that_requires_tls() {
    let tls = TlsServer::start(Access::TlsOnly).await;
    let ca = root(&tls.pki.ca);
    // verify-full with the CA; require with no CA at all.
    for params in [
        format!("sslmode=verify-full&{ca}"),
        format!("sslmode=verify-ca&{ca}"),
        "sslmode=require".into(),
    ] {
        let server = parse(&tls.url("postgres", &params));
        assert!(
            ssl_in_use(&server)
                .await
                .unwrap_or_else(|e| panic!("{params}: {}", e.report())),
            "{params}"
        );
    }
    // prefer (the default) takes the TLS the server offers; allow tries plain, is refused, and
    // goes on with TLS.
    for params in ["", "sslmode=prefer", "sslmode=allow"] {
        let server = parse(&tls.url("postgres", params));
        assert!(
            ssl_in_use(&server)
                .await
                .unwrap_or_else(|e| panic!("{params:?}: {}", e.report())),
            "{params:?}"
        );
    }
    // disable: refused by pg_hba, and the message says what to add.
    let e = refused(&parse(&tls.url("postgres", "sslmode=disable"))).await;
    assert_eq!(e.why(), Some(Why::NeedsTls), "{}", e.report());
    assert!(
        e.to_string().starts_with(
            "the server requires TLS (pg_hba has no entry without encryption): add `?sslmode=require` or `verify-full`"
        ),
        "{e}"
    );
    assert!(
        e.report().contains("no encryption"),
        "the server's own words follow: {}",
        e.report()
    );
    // The same from the environment, as libpq takes it (the string says nothing).
    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", tls.pki.ca.to_str().unwrap()),
    ];
    let server = parse_env(&tls.url("postgres", ""), &env);
    assert!(
        server
            .masked_url("postgres")
            .contains("sslmode=verify-full"),
        "{server:?}"
    );
    assert!(ssl_in_use(&server)
        .await
        .unwrap_or_else(|e| panic!("{}", e.report())));
    let e = refused(&parse_env(
        &tls.url("postgres", ""),
        &[("PGSSLMODE", "disable")],
    ))
    .await;
    assert_eq!(e.why(), Some(Why::NeedsTls), "{}", e.report());
    // The string wins over the environment.
    let server = parse_env(
        &tls.url("postgres", "sslmode=require"),
        &[("PGSSLMODE", "disable")],
    );
    assert!(ssl_in_use(&server)
        .await
        .unwrap_or_else(|e| panic!("{}", e.report())));
    // A server given by hostaddr alone is checked by its address (require checks nothing).
    let by_addr = parse(&format!(
        "hostaddr=127.0.0.1 port={} user=postgres password={PASSWORD} dbname=postgres sslmode=require",
        tls.port
    ));
    assert!(ssl_in_use(&by_addr)
        .await
        .unwrap_or_else(|e| panic!("{}", e.report())));
    tls.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_certificates_say_which_host_issuer_and_roots() {
    let tls = TlsServer::start(Access::TlsOnly).await;
    // A CA that did not sign the server's certificate.
    let other = root(&tls.pki.other_ca);
    let e = refused(&parse(
        &tls.url("postgres", &format!("sslmode=verify-full&{other}")),
    ))
    .await;
    assert_eq!(e.why(), Some(Why::Untrusted), "{}", e.report());
    let text = e.to_string();
    for part in [
        "the certificate of localhost is not trusted",
        "issued by `O=devenv tests,CN=devenv test CA`",
        &format!("sslrootcert={}", tls.pki.other_ca.display()),
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    // verify-ca checks the issuer as well.
    let e = refused(&parse(
        &tls.url("postgres", &format!("sslmode=verify-ca&{other}")),
    ))
    .await;
    assert_eq!(e.why(), Some(Why::Untrusted), "{}", e.report());
    // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca passes.
    let ca = root(&tls.pki.ca);
    let e = refused(&parse(&tls.url_at(
        "127.0.0.1",
        "postgres",
        &format!("sslmode=verify-full&{ca}"),
    )))
    .await;
    assert_eq!(e.why(), Some(Why::WrongName), "{}", e.report());
    assert!(
        e.to_string().starts_with("the certificate of 127.0.0.1 is for localhost, not 127.0.0.1 (sslmode=verify-full checks the host name)"),
        "{e}"
    );
    let by_addr = parse(&tls.url_at("127.0.0.1", "postgres", &format!("sslmode=verify-ca&{ca}")));
    assert!(ssl_in_use(&by_addr)
        .await
        .unwrap_or_else(|e| panic!("{}", e.report())));
    // A root file makes require check the chain, as in libpq.
    let e = refused(&parse(
        &tls.url("postgres", &format!("sslmode=require&{other}")),
    ))
    .await;
    assert_eq!(e.why(), Some(Why::Untrusted), "{}", e.report());
    // verify-full with no root anywhere (an empty HOME: no ~/.postgresql/root.crt).
    let home = tempfile::tempdir().unwrap();
    let e = refused(&parse_env(
        &tls.url("postgres", "sslmode=verify-full"),
        &[("HOME", home.path().to_str().unwrap())],
    ))
    .await;
    assert_eq!(e.why(), Some(Why::NoRoot), "{}", e.report());
    assert!(
        e.to_string()
            .contains("needs a root certificate to check localhost"),
        "{e}"
    );
    // ... but libpq's default file counts.
    std::fs::create_dir(home.path().join(".postgresql")).unwrap();
    std::fs::copy(&tls.pki.ca, home.path().join(".postgresql/root.crt")).unwrap();
    let server = parse_env(
        &tls.url("postgres", "sslmode=verify-full"),
        &[("HOME", home.path().to_str().unwrap())],
    );
    assert!(ssl_in_use(&server)
        .await
        .unwrap_or_else(|e| panic!("{}", e.report())));
    // sslrootcert=system: verify-full by default, the test CA is in no system store; a weaker
    // mode is a settings error, before anything is sent.
    let e = refused(&parse(&tls.url("postgres", "sslrootcert=system"))).await;
    assert!(
        e.why() == Some(Why::Untrusted) || e.is_settings(),
        "{}",
        e.report()
    );
    if e.why() == Some(Why::Untrusted) {
        assert!(e.to_string().contains("the system's store"), "{e}");
    } else {
        // A machine without CA certificates installed.
        assert!(
            e.to_string().starts_with(
                "sslrootcert=system: the system's certificate store has no certificate"
            ),
            "{e}"
        );
    }
    let e = refused(&parse(
        &tls.url("postgres", "sslmode=require&sslrootcert=system"),
    ))
    .await;
    assert!(e.is_settings(), "{}", e.report());
    assert!(
        e.to_string()
            .contains("sslmode=require may not be used with sslrootcert=system"),
        "{e}"
    );
    // A root file that is not there.
    let e = refused(&parse(&tls.url(
        "postgres",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    )))
    .await;
    assert!(e.is_settings(), "{}", e.report());
    assert!(
        e.to_string()
            .starts_with("sslrootcert /nonexistent/ca.pem does not exist"),
        "{e}"
    );
    tls.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_logs_in_and_its_key_is_never_shown() {
    let tls = TlsServer::start(Access::TlsOnly).await;
    let server = parse(&tls.cert_url("postgres"));
    assert_eq!(server.user(), CERT_USER);
    let (client, connection) = server
        .connect("postgres")
        .await
        .unwrap_or_else(|e| panic!("{}", e.report()));
    let task = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT current_user::text, ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), CERT_USER);
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, String>(2), format!("/CN={CERT_USER}"));
    drop(client);
    let _ = task.await;
    // The TLS parameters are printed back (paths, not contents).
    let shown = server.masked_url("postgres");
    assert!(
        shown.contains("sslcert=") && shown.contains("sslkey="),
        "{shown}"
    );
    let key = std::fs::read_to_string(&tls.pki.client_key).unwrap();
    let body = key.lines().nth(1).unwrap();
    assert!(!shown.contains(body));
    // Without the certificate the server asks for one: the message says so.
    let ca = root(&tls.pki.ca);
    let home = tempfile::tempdir().unwrap();
    let without = parse_env(
        &format!(
            "postgresql://{CERT_USER}@localhost:{}/postgres?sslmode=verify-full&{ca}",
            tls.port
        ),
        &[("HOME", home.path().to_str().unwrap())],
    );
    let e = refused(&without).await;
    assert_eq!(e.why(), Some(Why::NeedsClientCert), "{}", e.report());
    assert!(e.to_string().contains("set sslcert and sslkey"), "{e}");
    // A key others can read is refused before connecting (libpq's rule), and nothing of it is
    // printed.
    let loose = tls.pki.dir().join("loose.key");
    std::fs::copy(&tls.pki.client_key, &loose).unwrap();
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let url = tls.cert_url("postgres").replace(
        tls.pki.client_key.to_str().unwrap(),
        loose.to_str().unwrap(),
    );
    let e = refused(&parse(&url)).await;
    assert!(e.is_settings(), "{}", e.report());
    assert!(e.to_string().contains("has group or world access"), "{e}");
    // A key file that is not a key: its text is not quoted.
    let garbage = tls.pki.dir().join("garbage.key");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nnot-base64-SECRETPART\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &garbage,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let url = tls.cert_url("postgres").replace(
        tls.pki.client_key.to_str().unwrap(),
        garbage.to_str().unwrap(),
    );
    let e = refused(&parse(&url)).await;
    assert!(e.is_settings(), "{}", e.report());
    assert!(!e.report().contains("SECRETPART"), "{}", e.report());
    assert!(!e.report().contains(body), "{}", e.report());
    tls.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_tls_still_connects_by_default_and_refuses_require() {
    let plain = TempServer::start(PASSWORD)
        .await
        .expect("a native PostgreSQL");
    let port = plain.server().port();
    let url = |params: &str| {
        format!("postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres{params}")
    };
    // prefer (said or not) and allow go plain: no regression for local servers.
    for params in ["", "?sslmode=prefer", "?sslmode=allow", "?sslmode=disable"] {
        let server = parse(&url(params));
        assert!(
            !ssl_in_use(&server)
                .await
                .unwrap_or_else(|e| panic!("{params:?}: {}", e.report())),
            "{params:?}"
        );
    }
    // devenv's own servers skip the SSLRequest altogether.
    assert!(!ssl_in_use(plain.server()).await.unwrap());
    let e = refused(&parse(&url("?sslmode=require"))).await;
    assert_eq!(e.why(), Some(Why::NoTlsOnServer), "{}", e.report());
    assert!(
        e.to_string().starts_with(&format!(
            "the server at 127.0.0.1:{port} does not offer TLS, and sslmode=require requires it"
        )),
        "{e}"
    );
    plain.stop().await;
}
