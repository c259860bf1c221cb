#[devenv_fixture_macros::test(migrations = false)]
async fn empty_testdb(db: TestDb) {}

fn main() {}
