//! End-to-end tests of `devenv prod ...` (feature `aws`): the real binary against moto's AWS
//! emulator on 127.0.0.1 (`moto_server`, started per test on a free port, killed when the test
//! ends, pass or fail), reached through `AWS_ENDPOINT_URL` with fake credentials. Each test
//! builds its VPC, security group and rule through the SDK; the RDS instance comes from
//! `devenv prod create`. The what-is-my-ip service is a local HTTP server too: nothing here
//! leaves the machine.
//!
//! moto (5.2) does not implement RDS's `DescribeDBEngineVersions`, which `prod create` asks
//! to pick a version: the binary talks to [`rds_front`], a local HTTP front that answers that
//! one action itself (RDS's XML response, listing the versions the test gives it) and passes
//! every other request to moto unchanged.
//!
//! Without `moto_server` on PATH the tests fail and say how to install it
//! (`python3 -m pip install "moto[server]"`, which scripts/test does).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devenv_aws::ec2::types::{IpPermission, IpRange};
use devenv_aws::{Aws, Settings};

const BIN: &str = env!("CARGO_BIN_EXE_devenv");
const REGION: &str = "us-east-1";
/// The address the old workspace had: the rule starts out allowing it.
const OLD_IP: &str = "198.51.100.1";
/// What the local what-is-my-ip service answers.
const MY_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const PASSWORD: &str = "huEE33z2Qvl383";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `moto_server` on a free port of 127.0.0.1, killed on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}): these tests need moto's AWS emulator on \
                     PATH: python3 -m pip install \"moto[server]\" (scripts/test installs it)"
                )
            });
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited with {status} before answering");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A what-is-my-ip service on 127.0.0.1 answering `answer` to any GET.
fn ip_service(answer: Arc<Mutex<String>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ip", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = answer.lock().unwrap().clone();
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// The front of moto: answers `DescribeDBEngineVersions` with `versions` (postgres, status
/// available, in RDS's query-protocol XML) and forwards everything else to `moto`, one request
/// at a time per connection. Every request body it answered is kept in `asked`.
fn rds_front(
    moto: &str,
    versions: Arc<Mutex<Vec<String>>>,
    asked: Arc<Mutex<Vec<String>>>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let moto = moto.trim_start_matches("http://").to_owned();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let moto = moto.clone();
            let versions = versions.clone();
            let asked = asked.clone();
            std::thread::spawn(move || {
                let mut client = BufReader::new(stream);
                while let Some((head, body)) = read_http(&mut client) {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    let reply = if text.contains("Action=DescribeDBEngineVersions") {
                        asked.lock().unwrap().push(text);
                        engine_versions_reply(&versions.lock().unwrap())
                    } else {
                        let mut upstream = TcpStream::connect(&moto).unwrap();
                        upstream.write_all(&head).unwrap();
                        upstream.write_all(&body).unwrap();
                        let mut reader = BufReader::new(upstream);
                        let Some((head, body)) = read_http(&mut reader) else {
                            return;
                        };
                        [head, body].concat()
                    };
                    if client.get_mut().write_all(&reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// One HTTP/1.1 message (request or response) whose body has a Content-Length (or none, or
/// runs to the end): its head, as read, and its body.
fn read_http(reader: &mut BufReader<TcpStream>) -> Option<(Vec<u8>, Vec<u8>)> {
    use std::io::Read as _;
    let mut head = Vec::new();
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
        head.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            reader.read_exact(&mut body).ok()?;
        }
        None if head.starts_with(b"HTTP/") => {
            reader.read_to_end(&mut body).ok()?;
        }
        None => {}
    }
    Some((head, body))
}

/// RDS's answer to `DescribeDBEngineVersions` listing `versions` of postgres.
fn engine_versions_reply(versions: &[String]) -> Vec<u8> {
    let entries: String = versions
        .iter()
        .map(|v| {
            format!(
                "<DBEngineVersion><Engine>postgres</Engine><EngineVersion>{v}</EngineVersion>\
                 <MajorEngineVersion>{}</MajorEngineVersion><Status>available</Status>\
                 </DBEngineVersion>",
                v.split('.').next().unwrap_or_default()
            )
        })
        .collect();
    let body = format!(
        "<DescribeDBEngineVersionsResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
         <DescribeDBEngineVersionsResult><DBEngineVersions>{entries}</DBEngineVersions>\
         </DescribeDBEngineVersionsResult><ResponseMetadata><RequestId>devenv-test</RequestId>\
         </ResponseMetadata></DescribeDBEngineVersionsResponse>"
    );
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The versions the front says RDS offers, unless a test says otherwise.
const OFFERED: [&str; 5] = ["16.8", "17.2", "17.9", "17.10", "13.20"];

/// Moto, a VPC with a security group whose inbound rule allows [`OLD_IP`] on 5432, the IP
/// service, and a project whose devenv.yaml names them.
struct World {
    /// Kept for its drop (which kills moto_server).
    _moto: Moto,
    /// The RDS front the binary talks to ([`rds_front`]).
    front: String,
    /// What the front says RDS offers.
    versions: Arc<Mutex<Vec<String>>>,
    /// The `DescribeDBEngineVersions` requests it answered.
    asked: Arc<Mutex<Vec<String>>>,
    aws: Aws,
    group: String,
    rule: String,
    ip_answer: Arc<Mutex<String>>,
    ip_url: String,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let moto = Moto::start();
        let aws = Aws::connect_with(&Settings {
            region: Some(REGION.into()),
            endpoint_url: Some(moto.url.clone()),
            credentials: Some(("testing".into(), "testing".into())),
        })
        .await
        .unwrap();
        let (group, rule) = security_group(&aws).await;
        let ip_answer = Arc::new(Mutex::new(format!("{MY_IP}\n")));
        let ip_url = ip_service(ip_answer.clone());
        let versions = Arc::new(Mutex::new(OFFERED.map(String::from).to_vec()));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let front = rds_front(&moto.url, versions.clone(), asked.clone());
        let world = World {
            front,
            versions,
            asked,
            _moto: moto,
            aws,
            group,
            rule,
            ip_answer,
            ip_url,
            dir: tempfile::tempdir().unwrap(),
        };
        world.write_config(&world.rule);
        world
    }

    fn write_config(&self, rule: &str) {
        let yaml = format!(
            "database: cruddur\nprod:\n  region: {REGION}\n  security_group_id: {}\n  \
             security_group_rule_id: {rule}\n  ip_service: {}\n",
            self.group, self.ip_url
        );
        std::fs::write(self.dir.path().join("devenv.yaml"), yaml).unwrap();
    }

    /// `devenv prod ARGS` in the project, with only the variables given here (fake
    /// credentials, the emulator, no instance metadata service, no ~/.aws), no terminal.
    fn prod(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("-C")
            .arg(self.dir.path())
            .arg("prod")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("AWS_ENDPOINT_URL", &self.front)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("no-aws-credentials"),
            )
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env(devenv_core::PASSWORD_VAR, PASSWORD)
            .stdin(Stdio::null());
        for (name, value) in env {
            if value.is_empty() {
                cmd.env_remove(name);
            } else {
                cmd.env(name, value);
            }
        }
        cmd.output().unwrap()
    }

    /// `prod`, asserting success; its stderr.
    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.prod(args, env);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stderr(&out)
    }

    async fn cidr(&self) -> (String, i32, Option<String>) {
        let r = self.aws.rule(&self.group, &self.rule).await.unwrap();
        (r.cidr_ipv4.unwrap_or_default(), r.from_port, r.description)
    }

    async fn status(&self) -> String {
        self.aws
            .instance("cruddur-db-instance")
            .await
            .unwrap()
            .status
    }
}

/// A VPC, a security group in it and an inbound rule for [`OLD_IP`] on 5432: (group, rule).
async fn security_group(aws: &Aws) -> (String, String) {
    let ec2 = aws.ec2();
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap();
    let group = ec2
        .create_security_group()
        .group_name("cruddur-rds")
        .description("RDS for cruddur")
        .vpc_id(vpc_id)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    let permission = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(5432)
        .to_port(5432)
        .ip_ranges(
            IpRange::builder()
                .cidr_ip(format!("{OLD_IP}/32"))
                .description("GITPOD")
                .build(),
        )
        .build();
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(permission)
        .send()
        .await
        .unwrap();
    let rule = aws
        .rules(&group)
        .await
        .unwrap()
        .into_iter()
        .find(|r| !r.egress)
        .expect("the inbound rule just made")
        .id;
    (group, rule)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test]
async fn allow_ip_rewrites_the_rule_once_then_leaves_it_alone() {
    let w = World::new().await;
    let first = w.ok(&["allow-ip"], &[]);
    assert!(
        first.contains(&format!("this machine's IP is {MY_IP} (from {})", w.ip_url)),
        "{first}"
    );
    assert!(
        first.contains(&format!(
            "rule {} of {} now allows {MY_IP}/32 on port 5432 (was tcp 5432 from {OLD_IP}/32)",
            w.rule, w.group
        )),
        "{first}"
    );
    assert_eq!(
        w.cidr().await,
        (format!("{MY_IP}/32"), 5432, Some("GITPOD".into())),
        "the description is kept"
    );

    let again = w.ok(&["allow-ip"], &[]);
    assert!(
        again.contains(&format!(
            "already allows {MY_IP}/32 on port 5432; left alone"
        )),
        "{again}"
    );

    // A new workspace IP, on the port PROD_CONNECTION_URL names; the rule settings from the
    // seeds' variables instead of the file.
    *w.ip_answer.lock().unwrap() = "192.0.2.10".into();
    std::fs::write(
        w.dir.path().join("devenv.yaml"),
        format!("prod:\n  region: {REGION}\n  ip_service: {}\n", w.ip_url),
    )
    .unwrap();
    let url = "postgresql://root:secret@cruddur.example:6543/cruddur";
    let moved = w.ok(
        &["allow-ip"],
        &[
            ("DB_SG_ID", &w.group),
            ("DB_SG_RULE_ID", &w.rule),
            ("PROD_CONNECTION_URL", url),
        ],
    );
    assert!(
        moved.contains(&format!(
            "now allows 192.0.2.10/32 on port 6543 (was tcp 5432 from {MY_IP}/32)"
        )),
        "{moved}"
    );
    assert!(!moved.contains("secret"), "{moved}");
    assert_eq!(w.cidr().await.0, "192.0.2.10/32");
    assert_eq!(w.cidr().await.1, 6543);

    // --ip wins over the service.
    let explicit = w.ok(
        &["allow-ip", "--ip", "192.0.2.99"],
        &[("DB_SG_ID", &w.group), ("DB_SG_RULE_ID", &w.rule)],
    );
    assert!(!explicit.contains("this machine's IP is"), "{explicit}");
    assert_eq!(
        w.cidr().await,
        ("192.0.2.99/32".into(), 5432, Some("GITPOD".into()))
    );
}

#[tokio::test]
async fn create_then_status_shows_the_instance_and_whether_this_ip_may_connect() {
    let w = World::new().await;
    let out = w.prod(&["create"], &[(devenv_core::PASSWORD_VAR, "")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("takes the master password from MASTER_USER_PASSWORD"));

    let created = w.ok(&["create"], &[]);
    assert!(
        created.contains("devenv: cruddur-db-instance is available"),
        "{created}"
    );
    assert!(
        created.contains("postgresql://root:****@cruddur-db-instance."),
        "{created}"
    );
    assert!(created.contains(":5432/cruddur"), "{created}");
    assert!(
        !created.contains(PASSWORD),
        "the password leaked: {created}"
    );
    // The default major (17): the newest 17.x RDS offers, compared as numbers, and said.
    assert!(
        created.contains("postgres 17.10: the newest 17.x RDS offers in us-east-1"),
        "{created}"
    );
    let asked = w.asked.lock().unwrap().clone();
    assert!(
        asked.len() == 1 && asked[0].contains("Engine=postgres"),
        "{asked:?}"
    );
    let instance = w.aws.instance("cruddur-db-instance").await.unwrap();
    assert_eq!(
        (instance.engine_version.as_str(), instance.class.as_str()),
        ("17.10", "db.t3.micro")
    );
    assert_eq!(instance.security_groups, std::slice::from_ref(&w.group));

    let again = w.prod(&["create"], &[]);
    assert_eq!(again.status.code(), Some(5), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("cruddur-db-instance already exists (status available)"),
        "{}",
        stderr(&again)
    );

    let before = w.prod(&["status", "--json"], &[]);
    assert!(before.status.success(), "{}", stderr(&before));
    let s = json(&before);
    assert_eq!(s["instance"], "cruddur-db-instance");
    assert_eq!(s["engine_version"], "17.10");
    assert_eq!(s["status"], "available");
    assert!(
        s["endpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with("cruddur-db-instance.") && e.ends_with(":5432")),
        "{s}"
    );
    assert_eq!(s["ip"], MY_IP.to_string());
    assert_eq!(s["ip_allowed"], false);

    w.ok(&["allow-ip"], &[]);
    let after = json(&w.prod(&["status", "--json"], &[]));
    assert_eq!(after["ip_allowed"], true);
    assert_eq!(after["allowed_by"], w.rule.as_str());

    let human = w.ok(&["status"], &[]);
    assert!(human.contains("status      available"), "{human}");
    assert!(
        human.contains(&format!("{MY_IP} allowed on port 5432 by rule {}", w.rule)),
        "{human}"
    );
}

#[tokio::test]
async fn create_fails_with_the_list_when_rds_offers_no_version_of_the_major() {
    let w = World::new().await;
    let yaml = w.dir.path().join("devenv.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, format!("{text}  engine_version: \"14\"\n")).unwrap();
    let (code, line) = failure(&w.prod(&["create"], &[]));
    assert_eq!(code, Some(2), "{line}");
    assert_eq!(
        line,
        "error: RDS in us-east-1 offers no PostgreSQL 14 for new instances; it offers 13.20, \
         16.8, 17.2, 17.9, 17.10: set `engine_version:` under `prod:` in devenv.yaml to one of \
         them, or to a major version (such as 17) for its newest"
    );
    assert!(
        w.aws
            .find_instance("cruddur-db-instance")
            .await
            .unwrap()
            .is_none(),
        "nothing was created"
    );
    // A full version RDS offers is taken as it is.
    std::fs::write(&yaml, format!("{text}  engine_version: \"16.8\"\n")).unwrap();
    *w.versions.lock().unwrap() = vec!["16.8".into(), "16.9".into()];
    let created = w.ok(&["create"], &[]);
    assert!(
        created.contains("postgres 16.8, which RDS offers in us-east-1"),
        "{created}"
    );
    let instance = w.aws.instance("cruddur-db-instance").await.unwrap();
    assert_eq!(instance.engine_version, "16.8");
}

#[tokio::test]
async fn stop_is_guarded_and_stop_start_wait_for_the_new_state() {
    let w = World::new().await;
    w.ok(&["create"], &[]);

    let refused = w.prod(&["stop", "--wait"], &[]);
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(
            "refusing to stop RDS instance \"cruddur-db-instance\" (us-east-1, available): \
             no terminal to confirm on; pass --yes"
        ),
        "{}",
        stderr(&refused)
    );
    assert_eq!(w.status().await, "available", "the guard let it stop");

    let stopped = w.ok(&["stop", "--wait", "--yes"], &[]);
    assert!(
        stopped.contains("asked AWS to stop cruddur-db-instance"),
        "{stopped}"
    );
    assert!(
        stopped.contains("devenv: cruddur-db-instance is stopped ("),
        "{stopped}"
    );
    assert_eq!(w.status().await, "stopped");
    let status = json(&w.prod(&["status", "--json"], &[]));
    assert_eq!(status["status"], "stopped");

    let twice = w.ok(&["stop"], &[]);
    assert!(
        twice.contains("cruddur-db-instance is already stopped"),
        "{twice}"
    );

    let started = w.ok(&["start", "--wait"], &[]);
    assert!(
        started.contains("asked AWS to start cruddur-db-instance"),
        "{started}"
    );
    assert!(
        started.contains("devenv: cruddur-db-instance is available ("),
        "{started}"
    );
    assert_eq!(w.status().await, "available");
}

/// The error of a failed command: its code and its one line.
fn failure(out: &Output) -> (Option<i32>, String) {
    let text = stderr(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {text}");
    (out.status.code(), lines[0].to_owned())
}

#[tokio::test]
async fn errors_are_one_line_with_the_fix() {
    let w = World::new().await;
    w.write_config("sgr-0123456789abcdef0");
    let (code, line) = failure(&w.prod(&["allow-ip", "--ip", "192.0.2.1"], &[]));
    assert_eq!(code, Some(2), "{line}");
    assert_eq!(
        line,
        format!(
            "error: security group rule sgr-0123456789abcdef0 not found in group {}: \
             check `security_group_rule_id` under `prod:` in devenv.yaml (or DB_SG_RULE_ID); \
             `aws ec2 describe-security-group-rules --filters Name=group-id,Values={}` lists them",
            w.group, w.group
        )
    );

    w.write_config(&w.rule);
    let no_credentials = [("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")];
    let (code, line) = failure(&w.prod(&["allow-ip", "--ip", "192.0.2.1"], &no_credentials));
    assert_eq!(code, Some(4), "{line}");
    assert!(
        line.starts_with("error: no AWS credentials found ("),
        "{line}"
    );
    assert!(
        line.ends_with(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run `aws configure`"
        ),
        "{line}"
    );
    assert_eq!(w.cidr().await.0, format!("{OLD_IP}/32"), "changed anyway");

    let (code, line) = failure(&w.prod(&["status"], &[]));
    assert_eq!(code, Some(2), "{line}");
    assert_eq!(
        line,
        "error: RDS instance cruddur-db-instance not found in us-east-1: check \
         `instance:` and `region:` under `prod:` in devenv.yaml, or create it with \
         `devenv prod create`"
    );

    *w.ip_answer.lock().unwrap() = "<html>not an address</html>".into();
    let (code, line) = failure(&w.prod(&["allow-ip"], &[]));
    assert_eq!(code, Some(4), "{line}");
    assert!(
        line.contains("answered `<html>not an address</html>`, not an IPv4 address): pass --ip IP"),
        "{line}"
    );
}

#[test]
fn allow_ip_if_configured_is_silent_without_settings() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(BIN)
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .env_clear()
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let quiet = run(&["prod", "allow-ip", "--if-configured"], &[]);
    assert!(quiet.status.success(), "{}", stderr(&quiet));
    assert_eq!(stderr(&quiet), "");
    assert!(quiet.stdout.is_empty());

    let (code, line) = failure(&run(&["prod", "allow-ip"], &[]));
    assert_eq!(code, Some(2), "{line}");
    assert!(line.contains("needs `security_group_id` and `security_group_rule_id`"));

    let (code, line) = failure(&run(
        &["prod", "allow-ip", "--if-configured"],
        &[("DB_SG_ID", "sg-0123")],
    ));
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.ends_with("security_group_rule_id is missing"),
        "{line}"
    );
}
