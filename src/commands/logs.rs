//! `devenv logs`: the supervisor's output (`.devenv/up.log`, written by a foreground `up` too),
//! or with `--server` the PostgreSQL server's log (the native log file, or the container's
//! output); `-n N` shows the last N lines, `-f` follows.

use std::io::{BufRead as _, Seek as _};
use std::path::Path;
use std::time::Duration;

use clap::Args;
use devenv_core::Project;
use devenv_server::Record;

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
    let project = Project::open(root)?;
    let dir = crate::running::state_dir(&project.root)?;
    if args.server {
        let state = dir.read()?;
        #[cfg(feature = "docker")]
        if let Some(Record::Docker(record)) = state.as_ref().and_then(|s| s.server.clone()) {
            return docker_logs(&record, &project, args).await;
        }
        let log = match state.and_then(|s| s.server) {
            Some(Record::Native(layout)) => layout.log,
            _ => dir.server_log(),
        };
        return follow_file(&log, args, || {
            crate::running::running(&dir).ok().flatten().is_some()
        })
        .await;
    }
    follow_file(&dir.up_log(), args, || {
        crate::running::running(&dir).ok().flatten().is_some()
    })
    .await
}

#[cfg(feature = "docker")]
async fn docker_logs(
    record: &devenv_server::docker::DockerRecord,
    project: &Project,
    args: &LogsArgs,
) -> anyhow::Result<()> {
    use futures_util::StreamExt as _;
    let Some(server) = devenv_server::docker::DockerServer::attach(
        record,
        &project.config.user,
        &project.config.password,
    )
    .await?
    else {
        anyhow::bail!("the container of this project is not running");
    };
    let stream = server.logs(args.follow, args.lines);
    tokio::pin!(stream);
    while let Some(chunk) = stream.next().await {
        crate::output::stdout(&chunk)?;
    }
    Ok(())
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
