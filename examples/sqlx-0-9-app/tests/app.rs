//! The sqlx-app's tests on sqlx 0.9 (the same app: `src`, `migrations` and `db` are the
//! sqlx-app's), switched from `#[sqlx::test]` by changing the attribute only.

use devenv_fixture::sqlx_0_9::TestDbExt as _;
use devenv_fixture::TestDb;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

#[devenv_fixture::test]
async fn a_post_is_counted(pool: PgPool) -> Result<(), sqlx::Error> {
    assert_eq!(sqlx_app::post_count(&pool, "andrewbrown").await?, 1);
    sqlx_app::post(&pool, "andrewbrown", "second").await?;
    assert_eq!(sqlx_app::post_count(&pool, "andrewbrown").await?, 2);
    Ok(())
}

#[devenv_fixture::test(fixtures("teams"))]
async fn fixtures_are_loaded(mut conn: PgConnection) -> Result<(), sqlx::Error> {
    let kind: String = sqlx::query_scalar("SELECT kind::text FROM accounts WHERE handle = 'devs'")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(kind, "team");
    Ok(())
}

#[devenv_fixture::test(migrations = "./migrations", fixtures("../db/seed.sql"))]
async fn a_migrations_directory_of_the_test_s_own(
    mut conn: PoolConnection<Postgres>,
) -> Result<(), sqlx::Error> {
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(&mut *conn)
        .await?;
    assert!(accounts >= 2, "{accounts}");
    Ok(())
}

#[devenv_fixture::test(migrations = false)]
async fn no_migrations(pool: PgPool) -> Result<(), sqlx::Error> {
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&pool)
            .await?;
    assert_eq!(tables, 0);
    Ok(())
}

/// devenv's records, read by sqlx 0.9's own migrator: nothing to run, no checksum mismatch.
#[devenv_fixture::test]
async fn the_app_s_own_migrator_finds_everything_applied(db: TestDb) -> Result<(), sqlx::Error> {
    let pool = db.pool().await.unwrap();
    let before: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await?;
    assert_eq!(before.len(), 30);
    sqlx_app::MIGRATOR
        .run(&pool)
        .await
        .expect("the migrator did nothing");
    let after: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await?;
    assert_eq!(before, after);
    let systems: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE handle = 'system'")
        .fetch_one(&pool)
        .await?;
    assert_eq!(systems, 1, "migration 5 ran once");
    Ok(())
}

/// What devenv records against what sqlx 0.9 records in an empty database, every column but
/// the times.
#[devenv_fixture::test]
async fn devenv_records_what_sqlx_0_9_records(db: TestDb) -> Result<(), sqlx::Error> {
    let theirs = TestDb::builder()
        .search_from(env!("CARGO_MANIFEST_DIR"))
        .empty()
        .build()
        .await
        .unwrap();
    let their_pool = theirs.pool().await.unwrap();
    sqlx_app::MIGRATOR.run(&their_pool).await.unwrap();
    let sql =
        "SELECT version, description, success, checksum FROM _sqlx_migrations ORDER BY version";
    type Row = (i64, String, bool, Vec<u8>);
    let ours: Vec<Row> = sqlx::query_as(sql)
        .fetch_all(&db.pool().await.unwrap())
        .await?;
    let theirs: Vec<Row> = sqlx::query_as(sql).fetch_all(&their_pool).await?;
    assert_eq!(ours.len(), 30);
    assert_eq!(ours, theirs);
    Ok(())
}
