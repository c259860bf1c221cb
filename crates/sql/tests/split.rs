//! Splitter tests: every lexical case psql handles, the real-world corpora (statement and COPY
//! counts checked against psql 15's own split, counted from the server's `log_statement=all`),
//! and a property test that the items tile any input exactly.

use devenv_sql::cond::{parse_bool, Branch};
use devenv_sql::scan::{line_col, split, Item, Meta, Scanner};
use proptest::prelude::*;

/// Scans `src` as the loader does: `\if` blocks applied (an expression that is not a boolean
/// counts as false here), `v` set to `val'ue`. Returns every item.
fn drive(src: &[u8]) -> Vec<Item> {
    let mut scanner = Scanner::new(src);
    scanner.vars.insert("v".into(), "val'ue".into());
    let mut items = Vec::new();
    while let Some(item) = scanner.next_item() {
        if let Item::Meta(m) = &item {
            if let Some(branch) = Branch::from_name(&m.name) {
                let evaluates = scanner.conditions().evaluates(branch);
                let value = evaluates && parse_bool(&m.args.join(" ")).unwrap_or(false);
                let _ = scanner.branch(branch, value, m.span.start);
            }
        }
        items.push(item);
    }
    items
}

/// The texts of the statements `drive` yields, those of inactive branches included.
fn driven_statements(src: &str) -> Vec<String> {
    sql_texts(drive(src.as_bytes()))
}

fn statements(src: &str) -> Vec<String> {
    sql_texts(split(src.as_bytes()))
}

/// The text of each statement among `items`.
fn sql_texts(items: Vec<Item>) -> Vec<String> {
    items
        .into_iter()
        .filter_map(|item| match item {
            Item::Statement(s) => Some(String::from_utf8(s.sql).unwrap()),
            _ => None,
        })
        .collect()
}

fn metas(src: &str) -> Vec<Meta> {
    split(src.as_bytes())
        .into_iter()
        .filter_map(|item| match item {
            Item::Meta(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// Asserts that the items' source ranges tile `src` exactly. (A meta-command inside a
/// statement comes out before the statement around it, so order is checked after sorting.)
fn assert_tiles(src: &[u8]) {
    assert_items_tile(src, &split(src));
}

fn assert_items_tile(src: &[u8], items: &[Item]) {
    let mut ranges: Vec<_> = items
        .iter()
        .flat_map(Item::source_ranges)
        .filter(|r| !r.is_empty())
        .collect();
    ranges.sort_by_key(|r| r.start);
    let mut at = 0;
    for r in &ranges {
        assert_eq!(r.start, at, "gap or overlap at byte {at}");
        at = r.end;
    }
    assert_eq!(at, src.len(), "input not covered to its end");
}

#[test]
fn semicolons_end_statements_and_last_needs_none() {
    assert_eq!(
        statements("select 1; select 2;\nselect 3"),
        ["select 1;", "select 2;", "select 3"]
    );
}

#[test]
fn single_quotes_with_doubled_quotes_and_semicolons() {
    assert_eq!(
        statements("select 'a;''b'; select 2;"),
        ["select 'a;''b';", "select 2;"]
    );
}

#[test]
fn backslash_is_plain_in_standard_strings_but_escapes_in_e_strings() {
    assert_eq!(
        statements(r"select 'a\'; select E'b\';c'; select 3;"),
        [r"select 'a\';", r"select E'b\';c';", "select 3;"]
    );
    // `somee'...'` is an identifier followed by a string, not an E-string.
    assert_eq!(statements(r"select somee'x\'; select 2;").len(), 2);
}

#[test]
fn standard_conforming_strings_off_turns_on_backslash_escapes() {
    let got = statements("SET standard_conforming_strings = off;\nselect 'a\\';b'; select 2;");
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[1], "select 'a\\';b';");
}

#[test]
fn double_quoted_identifiers() {
    assert_eq!(
        statements(r#"create table "a;""b" (x int); select 1;"#),
        [r#"create table "a;""b" (x int);"#, "select 1;"]
    );
}

#[test]
fn dollar_quotes_with_any_tag_and_nesting() {
    let src = "create function f() returns int as $body$ begin; select $$;$$; $x$ ; $x$ end; $body$ language plpgsql;\nselect $1$a;";
    let got = statements(src);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].ends_with("language plpgsql;"));
    // `a$b$` is one identifier ($ continues identifiers), not a dollar quote.
    assert_eq!(statements("select a$b$c; select 2;").len(), 2);
}

#[test]
fn comments_line_and_nested_block() {
    let got = statements("-- a; comment\nselect /* x; /* y; */ z; */ 1; -- tail;\nselect 2;");
    assert_eq!(got, ["select /* x; /* y; */ z; */ 1;", "select 2;"]);
}

#[test]
fn semicolons_inside_parentheses_do_not_end_a_statement() {
    assert_eq!(statements("select (1; 2); select 3;").len(), 2);
}

#[test]
fn begin_atomic_bodies_stay_whole() {
    let src = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END;\nselect 9;";
    let got = statements(src);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].ends_with("END; END;"));
    // An ordinary transaction's BEGIN does not swallow what follows.
    assert_eq!(statements("BEGIN; select 1; END;").len(), 3);
}

#[test]
fn crlf_bom_and_non_ascii_identifiers() {
    let src = "\u{feff}create table \"naïve\" (größe int);\r\nselect größe from \"naïve\";\r\n";
    let got = statements(src);
    assert_eq!(got.len(), 2);
    assert!(got[0].starts_with("create table"), "BOM kept out: {got:?}");
    // Columns count characters; the BOM is not one.
    let at = src.find("größe int").unwrap();
    assert_eq!(line_col(src.as_bytes(), at), (1, 23));
    let at = src.find("select").unwrap();
    assert_eq!(line_col(src.as_bytes(), at), (2, 1));
}

#[test]
fn copy_from_stdin_data_is_kept_byte_for_byte() {
    let src = "COPY t (a, b) FROM stdin;\n1\tx  \n\n2\t\\N\n\\.\nselect 1;";
    let items = split(src.as_bytes());
    let data = items
        .iter()
        .find_map(|i| match i {
            Item::CopyData { data, .. } => Some(&src[data.clone()]),
            _ => None,
        })
        .unwrap();
    assert_eq!(data, "1\tx  \n\n2\t\\N\n");
    assert_eq!(statements(src).len(), 2);
    // CRLF terminator and a COPY split over lines.
    let src = "COPY t\n  FROM STDIN;\r\na\r\n\\.\r\nselect 2;";
    assert_eq!(statements(src).len(), 2);
    assert_tiles(src.as_bytes());
}

#[test]
fn meta_commands_and_their_arguments() {
    let m = metas("\\c chinook;\n\\connect \"My Db\"\n\\i 'a b.sql'\n\\ir sub/x.sql\n");
    let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["c", "connect", "i", "ir"]);
    assert_eq!(m[0].args, ["chinook"]);
    // `\c` reads SQL identifiers: double quotes go, case stays (psql's OT_SQLIDHACK).
    assert_eq!(m[1].args, ["My Db"]);
    assert_eq!(m[2].args, ["a b.sql"]);
    // Two commands on one line, as in extension scripts.
    let m = metas("\\echo Use \"CREATE EXTENSION pgjwt\" to load this file. \\quit\nselect 1;");
    assert_eq!(m[0].name, "echo");
    assert_eq!(
        m[0].args.join(" "),
        "Use \"CREATE EXTENSION pgjwt\" to load this file."
    );
    assert_eq!(m[1].name, "quit");
}

#[test]
fn meta_command_inside_a_statement_runs_first() {
    let items = split(b"select\n\\echo hi\n1;");
    assert!(matches!(&items[0], Item::Meta(m) if m.name == "echo"));
    assert!(matches!(&items[1], Item::Statement(s) if s.sql == b"select\n1;"));
}

#[test]
fn variables_interpolate_outside_quotes_only() {
    let src = b"select :n, :'s', :\"i\", ':n', $$:n$$, 1::int, :undefined;";
    let mut scanner = Scanner::new(src);
    scanner.vars.insert("n".into(), "42".into());
    scanner.vars.insert("s".into(), "it's".into());
    scanner.vars.insert("i".into(), "Tab".into());
    let Some(Item::Statement(s)) = scanner.next_item() else {
        panic!("no statement")
    };
    assert_eq!(
        String::from_utf8(s.sql.clone()).unwrap(),
        "select 42, 'it''s', \"Tab\", ':n', $$:n$$, 1::int, :undefined;"
    );
    // Positions after an interpolation map back to the file.
    let sql_at = s.sql.windows(5).position(|w| w == b"1::in").unwrap();
    let src_at = src.windows(5).position(|w| w == b"1::in").unwrap();
    assert_eq!(s.source_offset(sql_at), src_at);
}

#[test]
fn unterminated_constructs_run_to_the_end() {
    for src in [
        "select 'abc",
        "select $$abc",
        "select /* abc",
        "select \"abc",
        "COPY t FROM stdin;\n1\n",
    ] {
        assert_tiles(src.as_bytes());
        assert!(!statements(src).is_empty(), "{src}");
    }
}

#[test]
fn text_in_an_inactive_branch_is_dropped_from_the_query_buffer() {
    // As psql: the buffer before `\else` survives it, text read while inactive does not.
    let src = "\\if true\nCREATE TABLE\n\\else\nbogus :v\n\\endif\n  t ();\n";
    assert_eq!(driven_statements(src), ["CREATE TABLE\n  t ();"]);
    assert_items_tile(src.as_bytes(), &drive(src.as_bytes()));
    // A statement ended in an inactive branch takes the buffer with it.
    let src = "SELECT\n\\if false\n1;\n\\endif\n2;";
    assert_eq!(driven_statements(src), ["SELECT\n1;", "2;"]);
    assert_items_tile(src.as_bytes(), &drive(src.as_bytes()));
}

#[test]
fn nothing_is_interpolated_and_no_copy_data_is_read_in_an_inactive_branch() {
    let src = "\\if false\nselect :v;\nCOPY t FROM stdin;\n\\echo :v\n\\endif\nselect :v;\n";
    let items = drive(src.as_bytes());
    let texts: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Item::Statement(s) => Some(String::from_utf8(s.sql.clone()).unwrap()),
            Item::Meta(m) => Some(format!("\\{} {}", m.name, m.args.join(" "))),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        [
            "\\if false",
            "select :v;",
            "COPY t FROM stdin;",
            "\\echo :v",
            "\\endif ",
            "select val'ue;"
        ]
    );
    assert!(!items.iter().any(|i| matches!(i, Item::CopyData { .. })));
}

#[test]
fn an_elif_that_is_evaluated_interpolates_its_expression() {
    let src = "\\if false\n\\elif :v\n\\endif\n\\if true\n\\elif :v\n\\endif\n";
    let elifs: Vec<String> = drive(src.as_bytes())
        .into_iter()
        .filter_map(|i| match i {
            Item::Meta(m) if m.name == "elif" => Some(m.args.join(" ")),
            _ => None,
        })
        .collect();
    assert_eq!(elifs, ["val'ue", ":v"]);
}

#[test]
fn query_sending_commands_carry_their_query() {
    let items = split(b"select 1 as a \\gset p_\nselect 2;\n\\gexec\nselect 'x'\\g\n");
    let metas: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            Item::Meta(m) => Some((
                m.name.as_str(),
                m.args.clone(),
                m.query
                    .as_ref()
                    .map(|q| String::from_utf8(q.sql.clone()).unwrap()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        metas,
        [
            (
                "gset",
                vec!["p_".to_owned()],
                Some("select 1 as a ".to_owned())
            ),
            ("gexec", vec![], None),
            ("g", vec![], Some("select 'x'".to_owned())),
        ]
    );
    assert_eq!(statements("select 1 as a \\gset\nselect 2;"), ["select 2;"]);
}

#[test]
fn copy_takes_the_rest_of_the_line_and_its_inline_data() {
    let src = "\\copy t (a, b) from stdin with (format csv) \\ :v;\n1,2\n\\.\n\\copy t from 'x.csv'\nselect 1;";
    let items = split(src.as_bytes());
    let Item::Meta(m) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(m.args, ["t (a, b) from stdin with (format csv) \\ :v;"]);
    let Item::CopyData { data, .. } = &items[1] else {
        panic!("{items:?}")
    };
    assert_eq!(&src[data.clone()], "1,2\n");
    assert!(matches!(&items[2], Item::Meta(m) if m.args == ["t from 'x.csv'"]));
    assert_eq!(statements(src), ["select 1;"]);
    assert_tiles(src.as_bytes());
}

fn corpus(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/corpora/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn counts(path: &str) -> (usize, usize) {
    let src = corpus(path);
    assert_tiles(&src);
    let items = split(&src);
    let stmts = items
        .iter()
        .filter(|i| matches!(i, Item::Statement(_)))
        .count();
    let copies = items
        .iter()
        .filter(|i| matches!(i, Item::CopyData { .. }))
        .count();
    (stmts, copies)
}

/// Expected numbers are psql 15's: statements it sent, counted in the server log.
#[test]
fn corpora_split_as_psql_splits_them() {
    let cases = [
        ("pagila/pagila-schema.sql", 233, 0),
        ("pagila/pagila-data.sql", 44, 21),
        ("tricky-audit-trigger/audit.sql", 36, 0),
        (
            "tricky-flyway-pg-parser/copy/V002__create_copy_test_table.sql",
            11,
            0,
        ),
        (
            "tricky-flyway-pg-parser/copy/V003__fill_copy_test_table_with_copy.sql",
            9,
            2,
        ),
        ("tricky-flyway-pg-parser/dollar/V1__Dollar.sql", 10, 0),
        (
            "tricky-flyway-pg-parser/dollar/V2__Even_more_dollars.sql",
            3,
            0,
        ),
        ("tricky-flyway-pg-parser/function/V1__Function.sql", 1, 0),
        ("tricky-flyway-pg-parser/multiline/V1__MultiLine.sql", 3, 0),
        ("tricky-flyway-pg-parser/procedure/V1__Procedure.sql", 6, 0),
        ("tricky-flyway-pg-parser/trigger/V1__Trigger.sql", 10, 0),
        ("chinook/Chinook_PostgreSql.sql", 59, 0),
    ];
    for (path, stmts, copies) in cases {
        assert_eq!(counts(path), (stmts, copies), "{path}");
    }
    // pgjwt: psql stops at `\quit` on line 1; lexically it holds 9 functions after it.
    let src = corpus("tricky-pgjwt/pgjwt--0.2.0.sql");
    let creates = String::from_utf8_lossy(&src)
        .matches("CREATE OR REPLACE FUNCTION")
        .count();
    assert_eq!(counts("tricky-pgjwt/pgjwt--0.2.0.sql"), (creates, 0));
    let names: Vec<_> = metas(&String::from_utf8_lossy(&src))
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["echo", "quit"]);
    // Chinook switches database with a trailing semicolon.
    let chinook = metas(&String::from_utf8_lossy(&corpus(
        "chinook/Chinook_PostgreSql.sql",
    )));
    assert_eq!(chinook.len(), 1);
    assert_eq!(
        (chinook[0].name.as_str(), chinook[0].args.as_slice()),
        ("c", &["chinook".to_owned()][..])
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_tiled(src in proptest::collection::vec(any::<u8>(), 0..400)) {
        assert_tiles(&src);
    }

    #[test]
    fn sql_like_text_is_tiled(parts in proptest::collection::vec(
        prop::sample::select(vec![
            "select", " ", "\n", "\r\n", ";", "'", "''", "E'", "\\", "\\.", "\"", "$$", "$a$", "$", "--", "/*", "*/",
            "(", ")", ":v", ":'v'", ":\"v\"", "::", "COPY t FROM stdin", "\\c db", "\\echo x", "begin", "end",
            "create function", "atomic", "é", "\u{feff}", "1", "x",
        ]),
        0..60,
    )) {
        let src = parts.concat();
        assert_tiles(src.as_bytes());
        let mut scanner = Scanner::new(src.as_bytes());
        scanner.vars.insert("v".into(), "val'ue".into());
        while scanner.next_item().is_some() {}
    }

    /// With `\if` blocks applied as the loader applies them (inactive text dropped from the
    /// query buffer, no COPY data read there), the items still tile the input exactly.
    #[test]
    fn if_blocks_keep_the_input_tiled(parts in proptest::collection::vec(
        prop::sample::select(vec![
            "select", " ", "\n", ";", "'", "\"", "$$", "--", "/*", "*/", "(", ")", ":v", ":'v'",
            "\\if true\n", "\\if false\n", "\\if :v\n", "\\elif on\n", "\\elif off\n", "\\else\n",
            "\\endif\n", "\\gset\n", "\\gexec\n", "\\g\n", "COPY t FROM stdin;\n", "\\copy t from stdin\n",
            "\\copy t from 'f.csv' csv\n", "1\t2\n", "\\.\n", "\\echo x\n", "x",
        ]),
        0..60,
    )) {
        let src = parts.concat();
        assert_items_tile(src.as_bytes(), &drive(src.as_bytes()));
    }
}
