#[devenv_fixture_macros::test]
async fn generic<T: Default>(db: TestDb) {}

fn main() {}
