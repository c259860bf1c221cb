//! The app's tests on devenv's fixture: each gets a database of its own holding the
//! migrations and the seed, cloned from a template (nothing re-run per test).

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_app::schema::posts;
use diesel_app::MIGRATIONS;
use diesel_migrations::MigrationHarness;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[devenv_fixture::test]
fn a_post_is_listed(mut conn: PgConnection) -> QueryResult<()> {
    assert_eq!(
        diesel_app::titles(&mut conn, "andrewbrown")?,
        ["hello from andrewbrown"]
    );
    diesel_app::post(&mut conn, "andrewbrown", "second")?;
    assert_eq!(
        diesel_app::titles(&mut conn, "andrewbrown")?,
        ["hello from andrewbrown", "second"]
    );
    Ok(())
}

#[devenv_fixture::test]
fn every_test_starts_from_the_seed(mut conn: PgConnection) -> QueryResult<()> {
    // Whatever the test above added is in its own database, not here.
    assert_eq!(
        diesel_app::titles(&mut conn, "andrewbrown")?,
        ["hello from andrewbrown"]
    );
    Ok(())
}

#[devenv_fixture::test]
fn the_enum_value_added_by_a_migration_is_used_by_a_later_one(
    mut conn: PgConnection,
) -> QueryResult<()> {
    // 2024-01-02-000002 adds `published` outside a transaction (metadata.toml), 000003 makes it
    // the default; a new post gets it.
    diesel_app::post(&mut conn, "bayko", "first")?;
    let states: Vec<String> = posts::table
        .order(posts::id)
        .select(sql::<Text>("state::text"))
        .load(&mut conn)?;
    assert_eq!(states, ["published", "published"]);
    Ok(())
}

#[devenv_fixture::test]
fn the_app_s_own_migrations_find_everything_applied(mut conn: PgConnection) -> TestResult {
    assert!(!conn.has_pending_migration(MIGRATIONS)?);
    let ran = conn.run_pending_migrations(MIGRATIONS)?;
    assert!(ran.is_empty(), "ran again: {ran:?}");
    assert_eq!(conn.applied_migrations()?.len(), 7);
    Ok(())
}

/// diesel-async's `RunQueryDsl`, apart from diesel's (their methods share names).
mod with_diesel_async {
    use diesel::{ExpressionMethods, QueryDsl, QueryResult};
    use diesel_app::schema::users;
    use diesel_async::{AsyncPgConnection, RunQueryDsl};

    #[devenv_fixture::test]
    async fn an_async_connection_sees_the_seed(mut conn: AsyncPgConnection) -> QueryResult<()> {
        let names: Vec<String> = users::table
            .order(users::name)
            .select(users::name)
            .load(&mut conn)
            .await?;
        assert_eq!(names, ["andrewbrown", "bayko"]);
        diesel::insert_into(users::table)
            .values(users::name.eq("carol"))
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}

/// What devenv's load leaves against what diesel's own `run_pending_migrations` leaves in an
/// empty database: the same records (versions, the table's definition) and the same schema.
#[test]
fn devenv_records_and_builds_what_diesel_does() {
    let from = env!("CARGO_MANIFEST_DIR");
    let ours = devenv_fixture::TestDb::builder()
        .search_from(from)
        .build_blocking()
        .unwrap();
    let theirs = devenv_fixture::TestDb::builder()
        .search_from(from)
        .empty()
        .build_blocking()
        .unwrap();
    let ran = theirs
        .diesel()
        .unwrap()
        .run_pending_migrations(MIGRATIONS)
        .unwrap()
        .len();
    assert_eq!(ran, 7);
    for sql in [
        "SELECT version FROM __diesel_schema_migrations ORDER BY version",
        "SELECT table_name, column_name, data_type, is_nullable, column_default, \
                character_maximum_length, ordinal_position \
         FROM information_schema.columns WHERE table_schema = 'public' \
         ORDER BY table_name, ordinal_position",
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' \
         ORDER BY indexname",
        "SELECT t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid \
         ORDER BY t.typname, e.enumsortorder",
        "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal \
         ORDER BY tgname",
        "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY proname",
    ] {
        assert_eq!(
            ours.query_json_array(sql, &[]).unwrap(),
            theirs.query_json_array(sql, &[]).unwrap(),
            "{sql}"
        );
    }
    // And diesel's run_on timestamps are there, in order.
    let ordered = ours
        .query_json_array(
            "SELECT bool_and(run_on <= now()::timestamp) AS ok FROM __diesel_schema_migrations",
            &[],
        )
        .unwrap();
    assert_eq!(ordered[0]["ok"], true);
}
