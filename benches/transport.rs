//! Placeholder; filled in by the transport benchmark work (issue #5).
fn main() {}
