#[devenv_fixture_macros::test]
async fn async_diesel(conn: diesel::PgConnection) {}

fn main() {}
