//! The attribute's error messages, pinned: each file under `ui/` is a misuse, and its
//! `.stderr` what the compiler prints for it (`TRYBUILD=overwrite` rewrites them after a
//! deliberate change of wording).

#[test]
fn misuses_of_the_attribute_say_what_to_write_instead() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
