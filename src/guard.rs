//! The confirmation of destructive commands, shared by `devenv db` (on non-local targets) and
//! `devenv prod stop`: the user types the name of what is about to be hit, or passes `--yes`;
//! without a terminal to ask on and without `--yes`, the command is refused (exit code 5).

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use crate::Failure;

/// What is about to happen.
#[derive(Debug, Clone, Copy)]
pub struct Danger<'a> {
    /// The whole action, for the question and the refusal:
    /// `drop database "cruddur" on prod (postgresql://...)`.
    pub action: &'a str,
    /// What the user must type to go ahead.
    pub name: &'a str,
    /// What that is called: `database name`, `instance name`.
    pub noun: &'a str,
}

/// Goes ahead with `yes`; else asks on the terminal for the name, and refuses without one.
pub fn confirm(danger: Danger<'_>, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    let refuse = |why: &str| Failure {
        code: 5,
        message: format!("refusing to {}: {why}", danger.action),
    };
    if !std::io::stdin().is_terminal() {
        return Err(refuse("no terminal to confirm on; pass --yes to go ahead"));
    }
    eprint!(
        "devenv: about to {}.\nType the {} to go ahead: ",
        danger.action, danger.noun
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() == danger.name {
        Ok(())
    } else {
        Err(refuse(&format!("the {} typed did not match", danger.noun)))
    }
}
