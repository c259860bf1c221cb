#[devenv_fixture_macros::test(migrations = "db/migrations")]
async fn brings_its_own_migrations(pool: PgPool) {}

fn main() {}
