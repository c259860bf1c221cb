//! Guards: work that destroys or rewrites data that may be someone else's asks first. On a
//! terminal the user types the name of what is at stake; `--yes` goes ahead; without a
//! terminal and without `--yes` the work is refused (exit code 5).

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::exit::CliError;

/// Asks to go ahead with `what` (e.g. "drop database \"cruddur\" on prod (...)"): the user
/// must type `name`, unless `yes`.
pub fn confirm(what: &str, name: &str, yes: bool) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let refuse = |why: &str| CliError::Refused {
        what: what.to_owned(),
        why: why.to_owned(),
    };
    if !std::io::stdin().is_terminal() {
        return Err(refuse("no terminal to confirm on; pass --yes to go ahead"));
    }
    eprint!("devenv: about to {what}.\nType {name:?} to go ahead: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|_| refuse("could not read the answer"))?;
    if answer.trim() == name {
        Ok(())
    } else {
        Err(refuse("the name typed did not match"))
    }
}
