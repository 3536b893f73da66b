//! Compile-fail tests of `cgnet!`: each mistake is one clear error at the token
//! that caused it. The `.stderr` files are the expected compiler output
//! (regenerate with `TRYBUILD=overwrite` and review the diff).

#[test]
fn macro_errors_point_at_the_mistake() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/pass/*.rs");
}
