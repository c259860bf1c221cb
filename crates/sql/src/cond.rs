//! psql's conditional blocks (`\if`, `\elif`, `\else`, `\endif`): the stack of open blocks of
//! one file and psql's truth rules for their expressions (`ParseVariableBool`).
//!
//! The states and transitions are psql's (`conditional.h`): a block is in its true branch, in
//! a false branch that may still be followed by a true `\elif`, ignored (an earlier branch was
//! taken, or the enclosing branch is inactive), or in its `\else` (taken or not). Only the
//! innermost block decides whether text is active, because an inactive branch pushes only
//! ignored blocks.

/// One of the four branching meta-commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// `\if EXPR`
    If,
    /// `\elif EXPR`
    Elif,
    /// `\else`
    Else,
    /// `\endif`
    Endif,
}

impl Branch {
    /// The branching command a meta-command name is, if it is one.
    pub fn from_name(name: &str) -> Option<Branch> {
        match name {
            "if" => Some(Branch::If),
            "elif" => Some(Branch::Elif),
            "else" => Some(Branch::Else),
            "endif" => Some(Branch::Endif),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a branch that runs.
    True,
    /// In a branch that does not run; a later `\elif` or `\else` may.
    False,
    /// Nothing in this block runs any more (or the enclosing branch does not run).
    Ignored,
    /// In an `\else` that runs.
    ElseTrue,
    /// In an `\else` that does not run.
    ElseFalse,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    state: State,
    /// Byte offset of the block's `\if`.
    at: usize,
}

/// The open `\if` blocks of one file, innermost last.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    blocks: Vec<Block>,
}

impl Conditions {
    /// Whether statements and meta-commands at this point run.
    pub fn active(&self) -> bool {
        self.blocks
            .last()
            .is_none_or(|b| matches!(b.state, State::True | State::ElseTrue))
    }

    /// Whether `branch` here evaluates its expression (so its arguments are interpolated):
    /// an `\if` in an active branch, an `\elif` after branches that were all false.
    pub fn evaluates(&self, branch: Branch) -> bool {
        match branch {
            Branch::If => self.active(),
            Branch::Elif => self.blocks.last().is_some_and(|b| b.state == State::False),
            Branch::Else | Branch::Endif => false,
        }
    }

    /// Applies `branch`, found at byte `at`; `value` is its expression's value when
    /// [`Conditions::evaluates`] said it is evaluated (ignored otherwise). The error is psql's.
    pub fn apply(&mut self, branch: Branch, value: bool, at: usize) -> Result<(), String> {
        let top = self.blocks.last().map(|b| b.state);
        let next = match (branch, top) {
            (Branch::If, _) => {
                let state = match (self.active(), value) {
                    (true, true) => State::True,
                    (true, false) => State::False,
                    (false, _) => State::Ignored,
                };
                self.blocks.push(Block { state, at });
                return Ok(());
            }
            (_, None) => return Err(format!("\\{}: no matching \\if", branch_name(branch))),
            (Branch::Endif, Some(_)) => {
                self.blocks.pop();
                return Ok(());
            }
            (Branch::Elif | Branch::Else, Some(State::ElseTrue | State::ElseFalse)) => {
                return Err(format!(
                    "\\{}: cannot occur after \\else",
                    branch_name(branch)
                ))
            }
            (Branch::Elif, Some(State::True | State::Ignored)) => State::Ignored,
            (Branch::Elif, Some(State::False)) if value => State::True,
            (Branch::Elif, Some(State::False)) => State::False,
            (Branch::Else, Some(State::False)) => State::ElseTrue,
            (Branch::Else, Some(State::True | State::Ignored)) => State::ElseFalse,
        };
        if let Some(block) = self.blocks.last_mut() {
            block.state = next;
        }
        Ok(())
    }

    /// Byte offset of the innermost `\if` still open, if any (an error at the end of a file).
    pub fn unclosed(&self) -> Option<usize> {
        self.blocks.last().map(|b| b.at)
    }
}

fn branch_name(branch: Branch) -> &'static str {
    match branch {
        Branch::If => "if",
        Branch::Elif => "elif",
        Branch::Else => "else",
        Branch::Endif => "endif",
    }
}

/// psql's `ParseVariableBool`: `true`/`false`, `yes`/`no` and any non-empty prefix of them,
/// `on`/`off` and prefixes of at least two letters, `1`/`0`; case-insensitive. `None` for
/// anything else.
pub fn parse_bool(value: &str) -> Option<bool> {
    let lower = value.to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| lower.len() >= min && word.starts_with(&lower);
    if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || lower == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || lower == "0" {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_rules_are_psqls() {
        for yes in ["true", "T", "tR", "yes", "Y", "on", "ON", "1"] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["false", "f", "FAL", "no", "N", "off", "of", "OFF", "0"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        // "o" is neither on nor off; the empty string, words and numbers are not booleans.
        for bad in ["o", "", "foo", "truex", "2", "01", " true"] {
            assert_eq!(parse_bool(bad), None, "{bad:?}");
        }
    }

    fn run(steps: &[(Branch, bool)]) -> (Conditions, Vec<bool>) {
        let mut c = Conditions::default();
        let mut active = Vec::new();
        for (i, (b, v)) in steps.iter().enumerate() {
            c.apply(*b, *v, i).unwrap();
            active.push(c.active());
        }
        (c, active)
    }

    #[test]
    fn first_true_branch_runs_and_no_other() {
        use Branch::*;
        let (c, active) = run(&[
            (If, false),
            (Elif, true),
            (Elif, true),
            (Else, false),
            (Endif, false),
        ]);
        assert_eq!(active, [false, true, false, false, true]);
        assert_eq!(c.unclosed(), None);
        let (_, active) = run(&[(If, false), (Elif, false), (Else, false), (Endif, false)]);
        assert_eq!(active, [false, false, true, true]);
    }

    #[test]
    fn blocks_inside_an_inactive_branch_never_run() {
        use Branch::*;
        let (c, active) = run(&[(If, false), (If, true), (Else, false)]);
        // The nested `\if true` is ignored: neither it nor its else runs.
        assert_eq!(active, [false, false, false]);
        assert_eq!(c.unclosed(), Some(1));
        let (c, active) = run(&[(If, false), (If, true), (Elif, true)]);
        assert_eq!(active, [false, false, false]);
        assert!(!c.evaluates(Elif), "an ignored block evaluates no \\elif");
        let (c, active) = run(&[(If, false), (If, true), (Endif, false)]);
        assert_eq!(active, [false, false, false]);
        assert!(c.evaluates(Elif), "the outer block may still take a branch");
    }

    #[test]
    fn evaluation_and_misplaced_branches() {
        let mut c = Conditions::default();
        assert!(c.evaluates(Branch::If));
        assert_eq!(
            c.apply(Branch::Else, false, 0).unwrap_err(),
            "\\else: no matching \\if"
        );
        c.apply(Branch::If, false, 3).unwrap();
        assert!(c.evaluates(Branch::Elif));
        c.apply(Branch::Else, false, 9).unwrap();
        assert_eq!(
            c.apply(Branch::Elif, true, 12).unwrap_err(),
            "\\elif: cannot occur after \\else"
        );
        c.apply(Branch::Endif, false, 20).unwrap();
        assert_eq!(
            c.apply(Branch::Endif, false, 30).unwrap_err(),
            "\\endif: no matching \\if"
        );
    }
}
