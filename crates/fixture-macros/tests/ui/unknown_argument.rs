#[devenv_fixture_macros::test(flavor = "multi_thread")]
async fn takes_a_tokio_argument() {}

fn main() {}
