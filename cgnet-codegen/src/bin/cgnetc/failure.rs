//! How `cgnetc` reports failure: one `error: ...` line, then indented details.

use std::fmt;

pub struct Failure {
    message: String,
    details: Vec<String>,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), details: Vec::new() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Multi-line messages (the verifier's) become detail lines too.
        let mut lines = self.message.lines();
        writeln!(f, "error: {}", lines.next().unwrap_or_default())?;
        for line in lines.map(str::trim).chain(self.details.iter().map(String::as_str)) {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl From<cgnet_runtime::WeightError> for Failure {
    fn from(e: cgnet_runtime::WeightError) -> Self {
        Self { message: e.to_string(), details: e.details() }
    }
}

macro_rules! from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Self::new(e.to_string())
            }
        }
    )*};
}

from_display!(
    cgnet_codegen::SpecError,
    cgnet_codegen::ir::VerifyError,
    cgnet_codegen::interp::InterpError,
    cgnet_runtime::TensorFileError,
    cgnet_codegen::back::CompileError,
    cgnet_codegen::back::c::toolchain::ToolchainError,
    cgnet_codegen::pictures::PictureError
);
