//! Colours as rustc uses them (`error:` bold red, `warning:` yellow, `note:` cyan, a report's
//! gutter in blue and its caret in bold red), for devenv's own lines and for lines replayed from
//! a log ([`style_line`]). anstream drops them where colour does not go.

use anstyle::{AnsiColor, Style};

pub(super) const ERROR: Style = AnsiColor::Red.on_default().bold();
pub(super) const WARNING: Style = AnsiColor::Yellow.on_default().bold();
pub(super) const NOTE: Style = AnsiColor::Cyan.on_default().bold();
pub(super) const EMPHASIS: Style = Style::new().bold();
pub(super) const GUTTER: Style = AnsiColor::Blue.on_default().bold();

/// One line of devenv's stderr (or of its log) styled as rustc styles its own: `error:` in bold
/// red, `warning:` in yellow, `note:` in cyan, a `path:line[:col]:` before them in bold (and an
/// error's message), the report's gutter in blue and its caret in bold red. Other lines are
/// returned as they are.
pub fn style_line(line: &str) -> String {
    if let Some(styled) = style_gutter(line) {
        return styled;
    }
    for (label, style) in [("error", ERROR), ("warning", WARNING), ("note", NOTE)] {
        let tag = format!("{label}: ");
        if let Some(rest) = line.strip_prefix(&tag) {
            return format!("{style}{label}{style:#}: {rest}");
        }
        if let Some((location, message)) = line.split_once(&format!(": {tag}")) {
            let is_location = location
                .rsplit(':')
                .next()
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if is_location {
                let message = if label == "error" {
                    format!("{EMPHASIS}{message}{EMPHASIS:#}")
                } else {
                    message.to_owned()
                };
                return format!(
                    "{EMPHASIS}{location}{EMPHASIS:#}: {style}{label}{style:#}: {message}"
                );
            }
        }
    }
    line.to_owned()
}

/// A line of the report's source display: `  |`, `12 | text`, `   |    ^`.
fn style_gutter(line: &str) -> Option<String> {
    let (gutter, rest) = line
        .split_once(" | ")
        .or_else(|| line.strip_suffix(" |").map(|g| (g, "")))?;
    if !gutter.trim().chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let caret = rest.trim_start_matches([' ', '\t']);
    Some(if caret.starts_with('^') {
        let pad = &rest[..rest.len() - caret.len()];
        format!("{GUTTER}{gutter} |{GUTTER:#} {pad}{ERROR}{caret}{ERROR:#}")
    } else if rest.is_empty() {
        format!("{GUTTER}{gutter} |{GUTTER:#}")
    } else {
        format!("{GUTTER}{gutter} |{GUTTER:#} {rest}")
    })
}

#[cfg(test)]
mod tests {
    use super::style_line;

    const RED: &str = "\u{1b}[1m\u{1b}[31m";
    const YELLOW: &str = "\u{1b}[1m\u{1b}[33m";
    const BLUE: &str = "\u{1b}[1m\u{1b}[34m";
    const BOLD: &str = "\u{1b}[1m";
    const RESET: &str = "\u{1b}[0m";

    #[test]
    fn report_lines_are_styled_as_rustc_styles_them() {
        assert_eq!(
            style_line("db/seed.sql:1:13: error: relation \"nope\" does not exist"),
            format!("{BOLD}db/seed.sql:1:13{RESET}: {RED}error{RESET}: {BOLD}relation \"nope\" does not exist{RESET}")
        );
        assert_eq!(
            style_line("db/schema.sql:2: warning: \\quit stops loading"),
            format!("{BOLD}db/schema.sql:2{RESET}: {YELLOW}warning{RESET}: \\quit stops loading")
        );
        assert_eq!(
            style_line("error: no `devenv up` runs"),
            format!("{RED}error{RESET}: no `devenv up` runs")
        );
        assert_eq!(style_line("  |"), format!("{BLUE}  |{RESET}"));
        assert_eq!(
            style_line("12 | SELECT x FROM t;"),
            format!("{BLUE}12 |{RESET} SELECT x FROM t;")
        );
        assert_eq!(
            style_line("   |        ^"),
            format!("{BLUE}   |{RESET}        {RED}^{RESET}")
        );
    }

    #[test]
    fn other_lines_are_left_alone() {
        for line in [
            "devenv: reload [db/a.sql | db/b.sql]: ok",
            "DETAIL: Key (id)=(1) already exists.",
            "a message: error: without a location",
            "",
        ] {
            assert_eq!(style_line(line), line);
        }
    }
}
