//! The `cgnet!` macro: a thin shim over `cgnet_codegen::back::rust::expand_macro`,
//! which holds the grammar, the checks and the expansion (so they are tested
//! as a normal library). Use it through the `cgnet` facade crate.

/// Compiles a CGNet model description into a type with allocation-free
/// `run`, `scores` and `segment`. See the `cgnet` crate for the grammar.
#[proc_macro]
pub fn cgnet(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    cgnet_codegen::back::rust::expand_macro(input.into()).into()
}
