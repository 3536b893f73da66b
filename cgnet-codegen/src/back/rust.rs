//! The Rust backend (issue 4).
