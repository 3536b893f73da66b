//! The cgnet compiler as a library: model spec -> graph IR -> passes -> plan ->
//! emitters, with the reference interpreter as the numeric oracle.
//!
//! See `ARCHITECTURE.md` at the repository root for the code map.

pub mod back;
pub mod draw;
pub mod fuzz;
pub mod interp;
pub mod ir;
pub mod metrics;
pub mod passes;
#[cfg(feature = "pictures")]
pub mod pictures;
pub mod plan;
pub mod report;
pub mod spec;
pub mod stream;
pub mod syntax;
pub mod testing;

pub use interp::kernels::Tensor;
pub use ir::{lower, verify, Graph, OutputKind};
pub use spec::{ModelSpec, SpecError};
