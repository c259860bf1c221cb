//! The variables a running environment exports (`CONNECTION_URL`, `COMPOSE_CONNECTION_URL`,
//! `DATABASE_URL`, `PROD_CONNECTION_URL`) and their output formats (`devenv env`,
//! `.devenv/env`).

use devenv_server::{Backend, Server};

use crate::config::Config;

/// The variables of a server reachable at `server`, running on `backend`.
/// `COMPOSE_CONNECTION_URL` exists only where the compose network does (docker).
pub fn exported_vars(config: &Config, server: &Server, backend: Backend) -> Vec<(String, String)> {
    let url = server.url(&config.database);
    let mut vars = vec![("CONNECTION_URL".to_owned(), url.clone())];
    if backend == Backend::Docker {
        let compose = Server::parse("postgresql://db:5432/", |_| None)
            .map(|(s, _)| s.with_credentials(&config.user, &config.password))
            .map(|s| s.url(&config.database))
            .unwrap_or_default();
        vars.push(("COMPOSE_CONNECTION_URL".to_owned(), compose));
    }
    vars.push(("DATABASE_URL".to_owned(), url));
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
                    .all(|c| c.is_ascii_alphanumeric() || ":/@._-%?=&+,".contains(c))
                {
                    format!("{k}={v}\n")
                } else {
                    format!(
                        "{k}=\"{}\"\n",
                        v.replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('$', "\\$")
                    )
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
