//! Placeholder until the sse module lands.
fn main() {}
