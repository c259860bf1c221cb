//! `files_read`: which files a load reads, found without a server, with paths resolved as
//! the loader resolves them (the loader's own tests check the same files through
//! `LoadSummary::files`).

mod support;

use std::path::Path;

use devenv_sql::inputs::{candidates, files_read, on_disk, InputKind};
use devenv_sql::scan::Variables;
use support::project;

fn shown(root: &Path, files: &[&str]) -> Vec<(String, InputKind)> {
    files_read(root, files, &Variables::new())
        .into_iter()
        .map(|i| {
            assert_eq!(i.path, on_disk(root, &i.shown));
            (i.shown.display().to_string(), i.kind)
        })
        .collect()
}

#[test]
fn includes_and_copy_files_resolve_as_the_loader_resolves_them() {
    use InputKind::{Data, Sql};
    let dir = project(&[
        (
            "db/schema.sql",
            "\\i db/common.sql\n\\ir parts/a.sql\nCREATE TABLE t (x int);\n",
        ),
        ("db/common.sql", "\\include_relative parts/a.sql\n"),
        (
            "db/parts/a.sql",
            "\\copy t FROM 'data/t.csv' WITH (FORMAT csv)\n\\copy t from stdin\n1\n\\.\n",
        ),
        ("db/parts/data/t.csv", "1\n"),
        (
            "db/seed.sql",
            "\\include db/more.sql\n\\copy t from ../t2.csv csv\n",
        ),
        ("db/more.sql", "select 1;\n"),
        ("t2.csv", "2\n"),
    ]);
    assert_eq!(
        shown(dir.path(), &["db/schema.sql", "db/seed.sql"]),
        [
            ("db/schema.sql".into(), Sql),
            ("db/common.sql".into(), Sql),
            ("db/parts/a.sql".into(), Sql),
            ("db/parts/data/t.csv".into(), Data),
            ("db/seed.sql".into(), Sql),
            ("db/more.sql".into(), Sql),
            ("db/../t2.csv".into(), Data),
        ]
    );
}

#[test]
fn every_branch_is_listed_set_variables_followed_and_missing_files_left_out() {
    let dir = project(&[
        (
            "main.sql",
            "\\set dir sub\n\\if false\n\\ir :dir/a.sql\n\\else\n\\ir b.sql\n\\endif\n\\ir nope.sql\n\\ir :unknown/c.sql\n\\ir main.sql\n",
        ),
        ("sub/a.sql", "\\ir ../b.sql\n"),
        ("b.sql", ""),
        ("c.sql", ""),
    ]);
    let files: Vec<String> = shown(dir.path(), &["main.sql"])
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(files, ["main.sql", "sub/a.sql", "sub/../b.sql"]);
}

#[test]
fn absolute_paths_stay_absolute() {
    let dir = project(&[("abs.csv", "1\n")]);
    let csv = dir.path().join("abs.csv");
    let other = project(&[("s.sql", &format!("\\copy t from '{}'\n", csv.display()))]);
    let got = files_read(other.path(), &["s.sql"], &Variables::new());
    assert_eq!(got[1].path, csv);
    for command in ["ir", "i", "copy"] {
        let found = candidates(
            command,
            Path::new("db/x.sql"),
            Path::new("db/x.sql"),
            "/abs/y.sql",
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, Path::new("/abs/y.sql"));
    }
}
