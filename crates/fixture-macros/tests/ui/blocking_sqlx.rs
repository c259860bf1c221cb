#[devenv_fixture_macros::test]
fn blocking_pool(pool: PgPool) {}

fn main() {}
