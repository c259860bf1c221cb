#[devenv_fixture_macros::test]
fn blocking_diesel_async(conn: AsyncPgConnection) {}

fn main() {}
