#[devenv_fixture_macros::test(fixtures("users"))]
async fn fixtures_on_a_testdb(db: TestDb) {}

fn main() {}
