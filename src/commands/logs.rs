//! `devenv logs`: the supervisor's output (`.devenv/up.log`, written by a foreground `up` too),
//! or with `--server` the PostgreSQL server's log (the native log file, or the container's
//! output); `-n N` shows the last N lines, `-f` follows.

use std::io::{BufRead as _, Seek as _};
use std::path::Path;
use std::time::Duration;

use clap::Args;
use devenv_core::Environment;

/// `devenv logs` arguments.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Keep printing what is appended.
    #[arg(short, long)]
    pub follow: bool,
    /// The PostgreSQL server's log instead of the supervisor's.
    #[arg(long)]
    pub server: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long = "lines")]
    pub lines: Option<usize>,
}

/// Runs `devenv logs`.
pub async fn run(root: &Path, args: &LogsArgs) -> anyhow::Result<()> {
    let environment = Environment::open(root)?;
    let dir = environment.state_dir().clone();
    let alive = || {
        Environment::open(root)
            .ok()
            .is_some_and(|e| e.supervisor().is_some())
    };
    if args.server {
        let project = environment.project();
        let record = environment
            .supervisor()
            .and_then(|s| s.record())
            .or_else(|| environment.stale().and_then(|s| s.server.as_ref()));
        if let Some(record) = record {
            if let Some(log) = record.log_file() {
                return follow_file(log, args, alive).await;
            }
            let printed = record
                .follow_container_log(
                    &project.config.user,
                    &project.config.password,
                    args.follow,
                    args.lines,
                    &mut |chunk| {
                        crate::output::stdout(chunk).map_err(|e| {
                            if e.is::<crate::output::BrokenPipe>() {
                                std::io::ErrorKind::BrokenPipe.into()
                            } else {
                                std::io::Error::other(e.to_string())
                            }
                        })
                    },
                )
                .await;
            let printed = match printed {
                Err(devenv_server::ServerError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    return Err(crate::output::BrokenPipe.into());
                }
                other => other?,
            };
            if printed {
                return Ok(());
            }
            if record.backend() == devenv_server::Backend::Docker {
                anyhow::bail!("the container of this project is not running");
            }
        }
        return follow_file(&dir.server_log(), args, alive).await;
    }
    follow_file(&dir.up_log(), args, alive).await
}

/// Prints `path` (the last `lines` lines), then, with `follow`, what is appended while
/// `alive` says its writer runs.
async fn follow_file(path: &Path, args: &LogsArgs, alive: impl Fn() -> bool) -> anyhow::Result<()> {
    let Ok(file) = std::fs::File::open(path) else {
        anyhow::bail!(
            "no log at {} yet: it is written by `devenv up`",
            path.display()
        );
    };
    let mut reader = std::io::BufReader::new(file);
    let mut all = String::new();
    std::io::Read::read_to_string(&mut reader, &mut all)?;
    let lines: Vec<&str> = all.lines().collect();
    let skip = args.lines.map_or(0, |n| lines.len().saturating_sub(n));
    let mut shown = String::new();
    for line in &lines[skip..] {
        shown.push_str(line);
        shown.push('\n');
    }
    crate::output::stdout(&shown)?;
    if !args.follow {
        return Ok(());
    }
    let mut position = reader.stream_position()?;
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line)?;
        if read > 0 {
            position += read as u64;
            crate::output::stdout(&line)?;
            continue;
        }
        if !alive() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A new `up` truncates the log: start again from the top.
        if std::fs::metadata(path).map_or(0, |m| m.len()) < position {
            reader = std::io::BufReader::new(std::fs::File::open(path)?);
            position = 0;
        }
    }
}
