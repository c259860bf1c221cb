#[devenv_fixture_macros::test]
fn nothing_to_hand() {}

fn main() {}
