//! A small app on sqlx: its schema is `migrations/` (sqlx's layout), applied by
//! [`MIGRATOR`] in production and by devenv in development and tests.

use sqlx::PgPool;

/// The app's migrations, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Posts `body` as `handle`; returns the post's id.
pub async fn post(pool: &PgPool, handle: &str, body: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO posts (account_id, body) SELECT id, $2 FROM accounts WHERE handle = $1 RETURNING id",
    )
    .bind(handle)
    .bind(body)
    .fetch_one(pool)
    .await
}

/// How many posts `handle` made.
pub async fn post_count(pool: &PgPool, handle: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM posts p JOIN accounts a ON a.id = p.account_id WHERE a.handle = $1",
    )
    .bind(handle)
    .fetch_one(pool)
    .await
}
