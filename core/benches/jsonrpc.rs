//! Placeholder until the jsonrpc module lands.
fn main() {}
