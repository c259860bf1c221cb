#[devenv_fixture_macros::test(migrations = false, migrator = "crate::MIGRATOR")]
async fn both(pool: PgPool) {}

fn main() {}
