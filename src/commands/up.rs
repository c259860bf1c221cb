//! `devenv up`: in the foreground (the supervisor runs in this process until Ctrl-C), or with
//! `-d` in the background: a supervisor process of its own (its own session, its output in
//! `.devenv/up.log`) is started, and this process returns once it is ready, printing the URLs
//! (exit 0), or once it failed, printing why in colour on a terminal (its exit code: 3 for a
//! SQL error). A failed start leaves nothing running; so does Ctrl-C while it starts (the
//! background supervisor is asked to stop and waited for).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use devenv_core::state::StateDir;
use devenv_core::Project;

use crate::exit::CliError;
use crate::supervisor::{self, Options};
use crate::ui::Ui;

/// `devenv up` arguments.
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent yes/no flags; an enum per flag would only rename them"
)]
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Run in the background once the database is ready; `devenv logs -f` follows it,
    /// `devenv down` stops it.
    #[arg(short, long)]
    pub detach: bool,
    /// Rebuild the database from the files even when they did not change.
    #[arg(long)]
    pub fresh: bool,
    /// Throw the data away at stop (as `persist: false`), e.g. in CI.
    #[arg(long)]
    pub ephemeral: bool,
    /// Internal: run as the background supervisor of `up -d`.
    #[arg(long, hide = true)]
    pub supervise: bool,
    /// psql variables.
    #[command(flatten)]
    pub vars: crate::vars::SetArgs,
}

/// Runs `devenv up`.
pub async fn run(root: &Path, args: UpArgs, ui: &'static Ui) -> anyhow::Result<()> {
    let options = Options {
        fresh: args.fresh,
        ephemeral: args.ephemeral,
        detached: args.supervise,
    };
    if args.supervise {
        // Its own session: no terminal's signals reach it.
        let _ = nix::unistd::setsid();
        return supervisor::run(root, options, ui).await;
    }
    hand_over(root, &args.vars.set)?;
    if args.detach {
        return detach(root, &args, ui).await;
    }
    supervisor::run(root, options, ui).await
}

/// Leaves the `--set` values (none: clears any a dead supervisor left) for the supervisor
/// this `up` starts, in `.devenv/set.json` ([`crate::vars`]); nothing when one already runs.
fn hand_over(root: &Path, values: &[(String, String)]) -> anyhow::Result<()> {
    let environment = devenv_core::Environment::open(root)?;
    if environment.supervisor().is_some() {
        return Ok(());
    }
    let dir = environment.state_dir();
    dir.take_set()?;
    if !values.is_empty() {
        dir.put_set(values)?;
    }
    Ok(())
}

/// Starts the background supervisor and waits until it is ready or gone.
async fn detach(root: &Path, args: &UpArgs, ui: &Ui) -> anyhow::Result<()> {
    // Configuration errors and a running supervisor are reported here, at once.
    let project = Project::open(root)?;
    project.config.check_files()?;
    let dir = project.state_dir();
    if let Some(holder) = devenv_core::lock::holder(&dir.dir) {
        return Err(CliError::from(holder).into());
    }
    dir.create()?;
    let log_path = dir.up_log();
    let log = devenv_server::files::create_private(&log_path)
        .map_err(|e| anyhow::anyhow!(e).context(format!("creating {}", log_path.display())))?;
    let log_err = log.try_clone()?;
    let exe = std::env::current_exe()?;
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("-C")
        .arg(&project.root)
        .arg("up")
        .arg("--supervise");
    if args.fresh {
        command.arg("--fresh");
    }
    if args.ephemeral {
        command.arg("--ephemeral");
    }
    if ui.verbose {
        command.arg("--verbose");
    }
    // The child's stdin is the write end of a pipe: it writes `ready` there once the database
    // is ready, and its end closes when it exits, so the parent waits on the pipe, exactly.
    let (writer, reader) = tokio::net::unix::pipe::pipe()?;
    let mut child = command
        .stdin(Stdio::from(writer.into_blocking_fd()?))
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(false)
        .spawn()?;
    // The parent's copy of the write end goes with the command.
    drop(command);
    let pid = child.id().unwrap_or_default();
    wait_ready(&mut child, pid, reader, &dir, &log_path, ui).await
}

/// In the background supervisor of `up -d`: says on its stdin (the parent's readiness pipe)
/// that the database is ready.
pub fn tell_parent_ready() {
    use std::os::fd::AsFd as _;
    if let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() {
        let _ = std::io::Write::write_all(&mut std::fs::File::from(fd), b"ready\n");
    }
}

/// Waits until the background supervisor `child` is ready (prints the URLs) or gone (prints its
/// output, returns its exit code as [`Detached`]), on its readiness pipe. The spinner shows its
/// last line meanwhile (a display refresh every 100 ms). A Ctrl-C here stops it: it removes
/// what it started, as a foreground `up` does.
async fn wait_ready(
    child: &mut tokio::process::Child,
    pid: u32,
    mut pipe: tokio::net::unix::pipe::Receiver,
    dir: &StateDir,
    log_path: &Path,
    ui: &Ui,
) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt as _;
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    ui.step("starting in the background");
    let mut log_len = 0;
    let mut refresh = tokio::time::interval(Duration::from_millis(100));
    let mut said = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let why = tokio::select! {
            read = pipe.read(&mut buf) => {
                match read {
                    Ok(n) if n > 0 => {
                        said.extend_from_slice(&buf[..n]);
                        if !said.starts_with(b"ready") {
                            continue;
                        }
                        ui.done();
                        let state = dir.read()?.filter(|s| s.pid == pid && s.ready);
                        for (name, value) in state.iter().flat_map(|s| &s.env) {
                            ui.result(format!("  {name}={}", devenv_server::mask(value)));
                        }
                        ui.result(format!(
                            "ready; running in the background (pid {pid}); `devenv logs -f` follows it, `devenv down` stops it"
                        ));
                        return Ok(());
                    }
                    // The pipe closed: the child exited before it was ready.
                    _ => {
                        let status = child.wait().await?;
                        ui.done();
                        ui.replay(&std::fs::read_to_string(log_path).unwrap_or_default());
                        return Err(Detached(status.code().unwrap_or(1)).into());
                    }
                }
            }
            _ = refresh.tick() => {
                if let Some(line) = last_line(log_path, &mut log_len) {
                    ui.step(format!("starting in the background: {line}"));
                }
                continue;
            }
            _ = interrupt.recv() => "interrupted",
            _ = terminate.recv() => "asked to stop (SIGTERM)",
        };
        ui.done();
        ui.say(format!(
            "{why}: stopping the background supervisor (pid {pid}); it removes what it started"
        ));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or_default()),
            nix::sys::signal::Signal::SIGTERM,
        );
        child.wait().await?;
        return Err(CliError::Cancelled(why).into());
    }
}

/// The last `devenv: ...` line of the log at `path` when it grew since `len`, without its
/// prefix.
fn last_line(path: &Path, len: &mut u64) -> Option<String> {
    let now = std::fs::metadata(path).ok()?.len();
    if now == *len {
        return None;
    }
    *len = now;
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("devenv: "))
        .map(str::to_owned)
}

/// The background supervisor exited during start-up with this code (its output, the reason,
/// was printed); it removed what it had started.
#[derive(Debug, thiserror::Error)]
#[error("`devenv up -d` stopped during start-up (exit code {0}); nothing is left running")]
pub struct Detached(pub i32);
