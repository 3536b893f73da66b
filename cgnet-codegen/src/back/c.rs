//! The C backend (issue 5).
