//! The app's tests, switched from `#[sqlx::test]` by changing the attribute only.

use sqlx::{PgConnection, PgPool};

#[devenv_fixture::test]
async fn a_post_is_counted(pool: PgPool) -> Result<(), sqlx::Error> {
    assert_eq!(sqlx_app::post_count(&pool, "andrewbrown").await?, 1);
    sqlx_app::post(&pool, "andrewbrown", "second").await?;
    assert_eq!(sqlx_app::post_count(&pool, "andrewbrown").await?, 2);
    Ok(())
}

#[devenv_fixture::test]
async fn every_test_starts_from_the_seed(pool: PgPool) -> Result<(), sqlx::Error> {
    // Whatever the test above added is in its own database, not here.
    assert_eq!(sqlx_app::post_count(&pool, "andrewbrown").await?, 1);
    Ok(())
}

#[devenv_fixture::test(fixtures("teams"))]
async fn fixtures_are_loaded(pool: PgPool) -> Result<(), sqlx::Error> {
    let kind: String = sqlx::query_scalar("SELECT kind::text FROM accounts WHERE handle = 'devs'")
        .fetch_one(&pool)
        .await?;
    assert_eq!(kind, "team");
    Ok(())
}

#[devenv_fixture::test]
async fn the_enum_value_added_by_a_migration_is_used_by_a_later_one(mut conn: PgConnection) {
    let kind: String =
        sqlx::query_scalar("SELECT kind::text FROM accounts WHERE handle = 'system'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(kind, "bot");
}

#[devenv_fixture::test]
async fn the_app_s_own_migrator_finds_everything_applied(pool: PgPool) -> Result<(), sqlx::Error> {
    let before: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await?;
    assert_eq!(before.len(), 30);
    let installed: Vec<(i64,)> = sqlx::query_as(
        "SELECT extract(epoch FROM installed_on)::bigint FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&pool)
    .await?;
    // No checksum mismatch, nothing missing, nothing run again.
    sqlx_app::MIGRATOR
        .run(&pool)
        .await
        .expect("the migrator did nothing");
    let after: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await?;
    assert_eq!(before, after);
    let installed_after: Vec<(i64,)> = sqlx::query_as(
        "SELECT extract(epoch FROM installed_on)::bigint FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(installed, installed_after);
    let systems: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE handle = 'system'")
        .fetch_one(&pool)
        .await?;
    assert_eq!(systems, 1, "migration 5 ran once");
    Ok(())
}
