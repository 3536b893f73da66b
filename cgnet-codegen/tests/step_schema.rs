//! One step schema: each step struct's fields are declared once (in
//! cgnet-runtime's `step_structs!`), and the C typedefs, the C designated
//! initializers and the Rust literals are all printed from that declaration.
//! This test fails if a printed form, or the schema, drifts from the structs.

use cgnet_codegen::back::{c, rust};
use cgnet_runtime::program::*;

fn view(mem: Mem, offset: usize) -> View {
    View { mem, offset, c: 3, h: 4, w: 5, row_stride: 40, pixel_stride: 8, channel_stride: 1, row_mask: ALL_ROWS }
}

/// One step of every variant, every field a distinct value.
fn samples() -> Vec<Step> {
    let (a, b) = (view(Mem::Arena, 0), view(Mem::Arena, 1000));
    let epilogue = Epilogue { act: Act::Prelu(7), affine: Some((8, 9)), act2: Act::Relu };
    let conv =
        Conv { src: a, dst: b, kernel: 3, stride: 2, dilation: 1, weights: 11, bias: 12, add: Some(b), epilogue };
    vec![
        Step::Conv(conv),
        Step::Winograd(Conv { stride: 1, add: None, ..conv }),
        Step::DepthwisePair(DepthwisePair {
            src: a,
            dst: b,
            dilation: 2,
            loc_weights: 13,
            sur_weights: 14,
            loc_bias: 15,
            sur_bias: 16,
            epilogue,
        }),
        Step::AvgPool(AvgPool { src: a, dst: b, epilogue, tee: Some(view(Mem::Arena, 26)), tee_epilogue: epilogue }),
        Step::ChannelSums(ChannelSums { x: a, sums: 17 }),
        Step::Squeeze(Squeeze {
            x: a,
            hidden: 18,
            fc1_weight: 19,
            fc1_bias: 20,
            fc2_weight: 21,
            fc2_bias: 22,
            scratch: 23,
        }),
        Step::Elementwise(Elementwise {
            src: a,
            scale: Some(24),
            add: Some(b),
            dst: b,
            epilogue,
            tee: Some(view(Mem::Arena, 25)),
            tee_epilogue: epilogue,
        }),
        Step::Elementwise(Elementwise::copy(a, b, Epilogue::NONE)),
        Step::Upsample(Upsample { src: a, dst: view(Mem::Scores, 0) }),
        Step::UpsampleArgmax(UpsampleArgmax { src: a, dst: view(Mem::Labels, 0) }),
    ]
}

/// The top-level field names of a struct's `Debug` output (`Name { a: .., b: .. }`).
fn debug_fields(debug: &str) -> Vec<String> {
    let body = &debug[debug.find('{').unwrap() + 1..];
    let (mut depth, mut names, mut word, mut start) = (0, Vec::new(), String::new(), true);
    for ch in body.chars() {
        match ch {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => start = true,
            ':' if depth == 0 && start => {
                names.push(word.trim().to_string());
                word.clear();
                start = false;
            }
            c if depth == 0 && start => word.push(c),
            _ => {}
        }
    }
    names
}

#[test]
fn every_printed_form_follows_the_schema() {
    let samples = samples();
    // Every struct of the schema is covered (Winograd reuses Conv).
    for schema in STEP_SCHEMAS {
        assert!(samples.iter().any(|s| s.parts().2 == *schema), "no sample of {}", schema.name);
    }
    let typedefs = c::step_typedefs();
    for step in &samples {
        let (variant, kind, schema, values) = step.parts();
        let names: Vec<&str> = schema.fields.iter().map(|(n, _)| *n).collect();
        assert_eq!(values.len(), names.len(), "{variant}");
        // The schema is the struct: its Debug output lists the same fields in the same order.
        let inner = format!("{step:?}");
        let inner = &inner[inner.find('(').unwrap() + 1..inner.len() - 1];
        assert!(inner.starts_with(schema.name), "{variant} holds a {}", schema.name);
        assert_eq!(debug_fields(inner), names, "{variant}: schema vs struct");

        // C: the typedef declares every field, the initializer designates each in order.
        let typedef = typedefs.lines().find(|l| l.ends_with(&format!("}} {};", schema.c_type))).unwrap();
        let (ty, c_kind, init) = c::step_literal(step);
        assert_eq!((ty, c_kind), (schema.c_type, kind));
        let call = c::exec_call(step, "&s", "m");
        let (rows, chunk) = (step.rows().unwrap_or(1), step.chunk_rows());
        assert_eq!(call, format!("cg_exec({kind}, &s, 0, {rows}, {chunk}, m, pf);"));
        let mut at = 0;
        for name in &names {
            assert!(typedef.contains(&format!(" {name};")), "{}: {name} in {typedef}", schema.c_type);
            let found =
                init[at..].find(&format!(".{name} = ")).unwrap_or_else(|| panic!("{variant}: .{name} in {init}"));
            at += found;
        }

        // Rust: the literal names every field, in order, and parses.
        let literal = rust::step_literal(step);
        let expr: syn::Expr = syn::parse2(literal).expect("a Rust expression");
        let syn::Expr::Call(call) = expr else { panic!("{variant}: Step::Variant(..)") };
        let syn::Expr::Struct(fields) = &call.args[0] else { panic!("{variant}: a struct literal") };
        let printed: Vec<String> = fields
            .fields
            .iter()
            .map(|f| match &f.member {
                syn::Member::Named(n) => n.to_string(),
                syn::Member::Unnamed(_) => panic!("named fields"),
            })
            .collect();
        assert_eq!(printed, names, "{variant}: Rust literal");
    }
}
