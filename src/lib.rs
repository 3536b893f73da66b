#![doc = include_str!("../README.md")]
//!
//! # Crates
//!
//! This facade re-exports the toolchain: the [`cgnet!`] macro, `runtime`
//! (cgnet-runtime: what generated code runs on, and all it needs at run time),
//! and, with the `compiler` feature, `codegen` (cgnet-codegen: the compiler as
//! a library).

#[cfg(feature = "compiler")]
pub use cgnet_codegen as codegen;
pub use cgnet_dsl::cgnet;
pub use cgnet_runtime as runtime;
