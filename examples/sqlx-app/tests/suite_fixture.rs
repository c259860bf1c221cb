//! The benchmark's 200-test suite, the devenv-fixture way (`benches/fixture_vs_sqlx_test.rs`;
//! feature `bench-suite`): each test posts and counts on a database of its own, holding the
//! 30 migrations, the seed and the `teams` fixture.

macro_rules! twenty {
    ($($name:ident)*) => {$(
        #[devenv_fixture::test(fixtures("teams"))]
        async fn $name(pool: sqlx::PgPool) -> Result<(), sqlx::Error> {
            sqlx_app::post(&pool, "andrewbrown", "suite").await?;
            assert_eq!(sqlx_app::post_count(&pool, "andrewbrown").await?, 2);
            Ok(())
        }
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
