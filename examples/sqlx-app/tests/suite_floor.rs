//! The benchmark's floor (`benches/fixture_vs_sqlx_test.rs`; feature `bench-suite`): 200 tests
//! that do nothing, so the time of `cargo nextest run` itself (a process per test, the listing,
//! cargo's freshness check) shows beside the two suites that use a database.

macro_rules! twenty {
    ($($name:ident)*) => {$(
        #[test]
        fn $name() {}
    )*};
}

macro_rules! suite {
    ($($module:ident)*) => {$(
        mod $module {
            twenty!(t00 t01 t02 t03 t04 t05 t06 t07 t08 t09 t10 t11 t12 t13 t14 t15 t16 t17 t18 t19);
        }
    )*};
}

suite!(m0 m1 m2 m3 m4 m5 m6 m7 m8 m9);
