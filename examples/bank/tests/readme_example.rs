//! The README's example is this crate's code: keep them identical.
#![allow(missing_docs)]

#[test]
fn the_readme_example_is_the_bank_example() {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("```rust,ignore\n")
        .expect("the README has the example")
        + 15;
    let end = start + readme[start..].find("```").expect("closed");
    let example = &readme[start..end];
    let code = include_str!("../src/main.rs");
    assert!(
        code.contains(example),
        "README example and examples/bank/src/main.rs differ"
    );
}
