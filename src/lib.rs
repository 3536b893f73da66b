#![doc = include_str!("../README.md")]
//!
//! # Crates
//!
//! This facade re-exports the three crates of the toolchain:
//! [`codegen`] (the compiler), [`runtime`] (what generated code links against)
//! and the [`cgnet!`] macro.

pub use cgnet_codegen as codegen;
pub use cgnet_dsl::cgnet;
pub use cgnet_runtime as runtime;
