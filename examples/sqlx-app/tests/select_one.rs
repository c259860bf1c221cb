//! Forty tests of one `SELECT` each: what a suite costs per test in this crate's own debug
//! build (scripts/bench-user-build times it with and without opt-level overrides).

macro_rules! select_one {
    ($($name:ident),* $(,)?) => {$(
        #[devenv_fixture::test]
        async fn $name(pool: sqlx::PgPool) -> Result<(), sqlx::Error> {
            let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
            assert_eq!(one, 1);
            Ok(())
        }
    )*};
}

select_one!(
    t01, t02, t03, t04, t05, t06, t07, t08, t09, t10, t11, t12, t13, t14, t15, t16, t17, t18, t19,
    t20, t21, t22, t23, t24, t25, t26, t27, t28, t29, t30, t31, t32, t33, t34, t35, t36, t37, t38,
    t39, t40,
);
