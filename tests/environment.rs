//! One owner for the running environment (#19): what `up` runs is read back the same way by
//! every command and by the fixture. The case that was wrong: `backend: external` with a
//! server at 127.0.0.2, where `status` printed and sized 127.0.0.1.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use support::{psql_count, stderr, var, Project};

/// A TCP forwarder listening on 127.0.0.2 (nothing else listens there): a server reached
/// through it is reached at 127.0.0.2 only.
fn forward_from_127_0_0_2(to: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.2:0").expect("127.0.0.2 is a loopback address");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            for (mut from, mut into) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = into.shutdown(Shutdown::Write);
                });
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_server_at_127_0_0_2_is_read_back_as_127_0_0_2_everywhere() {
    // The server: a native `devenv up` of another project, reached only through 127.0.0.2.
    let host = Project::native();
    let mut host_up = host.spawn_up();
    let host_url = var(&host.wait_env(&mut host_up), "CONNECTION_URL").to_owned();
    let host_port: u16 = host_url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let port = forward_from_127_0_0_2(host_port);
    let project = Project::native();
    project.write(
        "devenv.yaml",
        &format!(
            "backend: external\nurl: postgresql://postgres:password@127.0.0.2:{port}/postgres\ndatabase: extapp\n"
        ),
    );
    let run = |args: &[&str]| {
        project
            .command(args)
            .env("DEVENV_BACKEND", "external")
            .env_remove("DEVENV_PORT")
            .output()
            .unwrap()
    };
    let mut up = project.spawn_up_with(&[("DEVENV_BACKEND", "external")]);
    let url = var(&project.wait_env(&mut up), "CONNECTION_URL").to_owned();
    assert!(url.contains(&format!("@127.0.0.2:{port}/extapp")), "{url}");
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "3");

    let status = run(&["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stderr(&status).contains(&format!("database extapp on 127.0.0.2:{port}")),
        "{}",
        stderr(&status)
    );
    let status = run(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["port"], port, "{json}");
    assert!(
        json["data"]["size_bytes"].as_u64().is_some_and(|b| b > 0),
        "sized on the server that runs: {json}"
    );

    let sessions = run(&["db", "sessions"]);
    assert!(sessions.status.success(), "{}", stderr(&sessions));
    // Listed (this one among them): reached through 127.0.0.2, where alone it answers.
    assert!(
        String::from_utf8_lossy(&sessions.stdout).contains("(this one)"),
        "{}",
        String::from_utf8_lossy(&sessions.stdout)
    );

    let save = run(&["snapshot", "save", "here"]);
    assert!(save.status.success(), "{}", stderr(&save));
    let list = run(&["snapshot", "list", "--json"]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("\"here\""),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );

    // The fixture finds the running `up` and its server, at 127.0.0.2.
    let db = devenv_fixture::TestDb::builder()
        .root(project.path())
        .build()
        .await
        .unwrap();
    assert!(
        db.url().contains(&format!("@127.0.0.2:{port}/")),
        "{}",
        db.url()
    );
    let users = db
        .query_json_array("SELECT handle FROM users", &[])
        .await
        .unwrap();
    assert_eq!(users.as_array().map(Vec::len), Some(3), "{users}");
    drop(db);

    up.stop();
    let down = run(&["down", "--volumes"]);
    assert!(down.status.success(), "{}", stderr(&down));
    host_up.stop();
    std::thread::sleep(Duration::from_millis(10));
}
