//! Snapshots of the fused IR and of the plan report for one small model.
//! They show *that* something changed; `passes.rs` and the goldens show it is right.

use cgnet_codegen::ir::OutputKind;
use cgnet_codegen::{lower, passes, plan, ModelSpec};

fn tiny() -> cgnet_codegen::ir::Graph {
    let mut spec = ModelSpec::cityscapes(37, 53);
    (spec.classes, spec.stage2_blocks, spec.stage3_blocks) = (4, 2, 2);
    let mut g = lower(&spec);
    g.retain_outputs(&[OutputKind::Logits, OutputKind::Labels]);
    passes::optimize(&g.compact(), None).unwrap().0
}

#[test]
fn fused_ir_of_a_small_model() {
    insta::assert_snapshot!(tiny().to_string());
}

#[test]
fn plan_report_of_a_small_model() {
    insta::assert_snapshot!(plan::plan(&tiny()).to_text());
}

#[test]
fn rust_expansion_of_a_small_model() {
    let tokens = quote::quote! {
        /// A small model for the snapshot.
        pub model Tiny {
            input: 3 x 16 x 16,
            classes: 2,
            stage1: { channels: 8, convs: 2 },
            stage2: { channels: 8, blocks: 2, reduction: 2 },
            stage3: { channels: 16, blocks: 2, reduction: 4 },
            target: avx2,
        }
    };
    let expanded = cgnet_codegen::back::rust::expand_macro(tokens);
    let file: syn::File = syn::parse2(expanded).expect("the expansion is valid Rust");
    insta::assert_snapshot!(prettyplease::unparse(&file));
}

/// `cgnetc build --target rust` of a small model with random weights (the
/// packed weights go to `tiny.weights`, not into the snapshot).
#[test]
fn standalone_rust_module_of_a_small_model() {
    let mut spec = ModelSpec::cityscapes(16, 16);
    spec.name = Some("tiny".into());
    (spec.classes, spec.stage2_blocks, spec.stage3_blocks) = (2, 2, 2);
    let mut graph = lower(&spec);
    cgnet_codegen::testing::bind_random_weights(&mut graph, 5);
    let model = cgnet_codegen::back::compile(&spec, &graph, "0000 (snapshot weights)").unwrap();
    let files = cgnet_codegen::back::rust::standalone(&model);
    let cgnet_codegen::back::c::FileContents::Text(module) = &files[0].contents else { panic!("tiny.rs is text") };
    assert_eq!(files[1].name, "tiny.weights");
    insta::assert_snapshot!(module);
}
