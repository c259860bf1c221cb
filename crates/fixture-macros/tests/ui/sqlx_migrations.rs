#[devenv_fixture_macros::test(migrations = true)]
async fn says_the_default(pool: PgPool) {}

fn main() {}
