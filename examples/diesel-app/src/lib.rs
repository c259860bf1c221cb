//! A small app on diesel: its schema is `migrations/` (diesel's layout), applied by
//! [`MIGRATIONS`] in production and by devenv in development and tests.

use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};

/// The app's migrations, embedded at compile time.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!();

/// The tables, as `diesel print-schema` writes them (`posts.state`, an enum, is left to SQL).
pub mod schema {
    diesel::table! {
        users (id) {
            id -> Int4,
            name -> Text,
        }
    }

    diesel::table! {
        posts (id) {
            id -> Int4,
            user_id -> Int4,
            title -> Text,
            updated_at -> Timestamp,
        }
    }

    diesel::joinable!(posts -> users (user_id));
    diesel::allow_tables_to_appear_in_same_query!(users, posts);
}

use schema::{posts, users};

/// Posts `title` as the user named `name`; returns the post's id.
pub fn post(conn: &mut PgConnection, name: &str, title: &str) -> QueryResult<i32> {
    let user_id: i32 = users::table
        .filter(users::name.eq(name))
        .select(users::id)
        .first(conn)?;
    diesel::insert_into(posts::table)
        .values((posts::user_id.eq(user_id), posts::title.eq(title)))
        .returning(posts::id)
        .get_result(conn)
}

/// The titles of the posts of the user named `name`, oldest first.
pub fn titles(conn: &mut PgConnection, name: &str) -> QueryResult<Vec<String>> {
    posts::table
        .inner_join(users::table)
        .filter(users::name.eq(name))
        .order(posts::id)
        .select(posts::title)
        .load(conn)
}
