//! `--set NAME=VALUE` on `up`, the loading `db` jobs and `reload`: psql variables set before
//! the first file, over devenv.yaml's `vars:` (as `psql -v`). The values reach a supervisor
//! through `.devenv/set.json` (0600), which `up` writes before it starts one (so they are
//! never on a command line another user can read) and `devenv reload` writes before its
//! SIGUSR1; the supervisor takes it (reads and removes it) when it starts and at each
//! `devenv reload`, and keeps the values for every reload after. Secret values (see
//! [`devenv_core::config::vars`]) are registered with [`crate::ui::secret`], so they are
//! masked in everything devenv prints.

use clap::Args;
use devenv_core::config::Vars;

/// The `--set` arguments.
#[derive(Debug, Clone, Default, Args)]
pub struct SetArgs {
    /// Set a psql variable before the first file, as `psql -v NAME=VALUE` (repeatable; over
    /// devenv.yaml's `vars:`).
    ///
    /// Example: `--set USER_NAME=app --set USER_PASSWORD="$APP_PW"`.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse)]
    pub set: Vec<(String, String)>,
}

fn parse(arg: &str) -> Result<(String, String), String> {
    devenv_core::config::vars::parse_set(arg)
}

/// Sets `values` over `vars`, then registers every secret value of `vars` for masking.
pub fn apply(vars: &mut Vars, values: &[(String, String)]) {
    for (name, value) in values {
        vars.set(name, value);
    }
    register(vars);
}

/// Registers the secret values of `vars` for masking.
pub fn register(vars: &Vars) {
    for secret in vars.secrets() {
        crate::ui::secret(secret);
    }
}
