//! The shop (placeholder until the analyser lands).
fn main() {}
