#[devenv_fixture_macros::test(migrator("crate::MIGRATOR"))]
async fn brings_its_own_migrator(pool: PgPool) {}

fn main() {}
