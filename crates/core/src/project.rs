//! A project's identity, its `.devenv/` state, and the variables it exports.
//!
//! `devenv up` writes `.devenv/state.json` (what runs where, for `down`, `status`, `env`) and
//! `.devenv/env` (dotenv). Containers carry the project label, so a `kill -9` of `devenv up`
//! leaves nothing `devenv down` cannot find.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Backend, Config};

/// Whether process `pid` runs on this machine; a zombie (exited, not yet reaped by its parent)
/// does not count.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 0 || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    // `/proc/PID/stat` is `pid (comm) STATE ...`; comm may hold spaces, so split after `)`.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s != "Z"))
        })
        .unwrap_or(true)
}

/// The state directory under the project root.
pub const STATE_DIR: &str = ".devenv";

/// The project label's value: a hash of the canonical project path.
pub fn project_id(root: &Path) -> String {
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let digest = Sha256::digest(canonical.to_string_lossy().as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A container name unique to the project: `devenv-<dir>-<id>`.
pub fn container_name(config: &Config) -> String {
    let dir: String = std::fs::canonicalize(&config.root)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "devenv-{}-{}",
        dir.trim_matches('-'),
        project_id(&config.root)
    )
}

/// What `devenv up` left running, in `.devenv/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Which backend runs the server.
    pub backend: Backend,
    /// Container id (docker).
    pub container_id: Option<String>,
    /// Container name (docker).
    pub container_name: Option<String>,
    /// Postmaster pid (native).
    pub server_pid: Option<u32>,
    /// Host port on 127.0.0.1.
    pub host_port: u16,
    /// The `devenv up` process.
    pub pid: u32,
    /// Database name.
    pub database: String,
    /// The exported variables.
    pub env: Vec<(String, String)>,
}

/// Paths of a project's state files.
#[derive(Debug, Clone)]
pub struct StateFiles {
    /// `.devenv/`.
    pub dir: PathBuf,
}

impl StateFiles {
    /// The state files of the project at `root`.
    pub fn new(root: &Path) -> Self {
        StateFiles {
            dir: root.join(STATE_DIR),
        }
    }

    /// `.devenv/state.json`.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// `.devenv/env`.
    pub fn env(&self) -> PathBuf {
        self.dir.join("env")
    }

    /// Writes both files.
    pub fn write(&self, state: &State) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
        write_atomic(&self.state(), json.as_bytes())?;
        write_atomic(
            &self.env(),
            format_env(&state.env, EnvFormat::Dotenv).as_bytes(),
        )
    }

    /// Reads the state file, if there is one.
    pub fn read(&self) -> std::io::Result<Option<State>> {
        match std::fs::read_to_string(self.state()) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes both files.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(self.state());
        let _ = std::fs::remove_file(self.env());
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The variables `devenv up` exports for a server reachable at 127.0.0.1:`host_port`.
pub fn exported_vars(config: &Config, host: &str, host_port: u16) -> Vec<(String, String)> {
    let url = devenv_server::url(
        &config.user,
        &config.password,
        host,
        host_port,
        &config.database,
    );
    let compose = devenv_server::url(&config.user, &config.password, "db", 5432, &config.database);
    let mut vars = vec![
        ("CONNECTION_URL".to_owned(), url.clone()),
        ("COMPOSE_CONNECTION_URL".to_owned(), compose),
        ("DATABASE_URL".to_owned(), url),
    ];
    if let Ok(prod) = std::env::var("PROD_CONNECTION_URL") {
        vars.push(("PROD_CONNECTION_URL".to_owned(), prod));
    }
    vars
}

/// Output formats of `devenv env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFormat {
    /// `export NAME='value'`, for `eval "$(devenv env)"`.
    Sh,
    /// `NAME=value` lines (dotenv; values quoted when needed).
    Dotenv,
    /// A JSON object.
    Json,
}

/// Formats variables.
pub fn format_env(vars: &[(String, String)], format: EnvFormat) -> String {
    match format {
        EnvFormat::Sh => vars
            .iter()
            .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', r"'\''")))
            .collect(),
        EnvFormat::Dotenv => vars
            .iter()
            .map(|(k, v)| {
                if v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":/@._-%?=&+".contains(c))
                {
                    format!("{k}={v}\n")
                } else {
                    format!("{k}=\"{}\"\n", v.replace('\\', "\\\\").replace('"', "\\\""))
                }
            })
            .collect(),
        EnvFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = vars
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            serde_json::to_string_pretty(&map).unwrap_or_default() + "\n"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_format_survives_quotes() {
        let vars = vec![("A".to_owned(), "it's".to_owned())];
        assert_eq!(format_env(&vars, EnvFormat::Sh), "export A='it'\\''s'\n");
        assert_eq!(format_env(&vars, EnvFormat::Dotenv), "A=\"it's\"\n");
    }
}
