#[devenv_fixture_macros::test]
async fn a_number(n: u32) {}

fn main() {}
