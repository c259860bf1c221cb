#[devenv_fixture_macros::test]
async fn two(db: TestDb, client: Client) {}

fn main() {}
