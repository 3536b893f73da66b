//! The model-description language, parsed from `proc_macro2` tokens so that
//! the `cgnet!` macro and `cgnetc` (`.cgnet` files) share one parser and one
//! set of errors. Every error carries the span of the token that caused it,
//! and all errors of one description are reported together.
//!
//! ```text
//! /// CGNet-M3N21 trained on CamVid (11 classes).
//! pub model CamVid {
//!     input: 3 x 360 x 480,
//!     classes: 11,
//!     stage1: { channels: 32, convs: 3 },
//!     stage2: { channels: 64, blocks: 3, dilation: 2, reduction: 8 },
//!     stage3: { channels: 128, blocks: 21, dilation: 4, reduction: 16 },
//!     residual: global,          // global | local | none
//!     input_injection: true,
//!     activation: prelu,         // prelu | relu
//!     global_context: true,
//!     weights: "weights/cgnet_camvid.safetensors",
//!     target: native,            // scalar | avx2 | avx512 | neon | native | gpu
//!     mean: [105.65775, 103.329834, 99.625404],   // RGB; the Cityscapes mean when absent
//!     std: [1, 1, 1],            // divides (pixel - mean); 1 when absent
//!     labels: { Sky: [128, 128, 128], Building: [128, 0, 0], /* one per class */ },
//! }
//! ```

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::{braced, bracketed, Attribute, Ident, LitBool, LitFloat, LitInt, LitStr, Token, Visibility};

use crate::spec::{Activation, CgStage, Label, ModelSpec, Residual, Stage1};

/// Which kernels generated Rust runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RustTarget {
    Scalar,
    Avx2,
    /// AVX-512F (16 lanes); bit-identical to `Avx2`.
    Avx512,
    Neon,
    /// The best the running CPU supports, detected at construction.
    Native,
    /// The GPU through cgnet-runtime's wgpu shim (`on_gpu`), needing cgnet's
    /// `gpu` feature; the CPU entry points run the best kernels of the CPU.
    Gpu,
}

/// A parsed, validated model description.
pub struct ModelDecl {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub spec: ModelSpec,
    /// The weights path as written, with its span.
    pub weights: Option<LitStr>,
    pub target: RustTarget,
}

/// One `name: value` entry.
struct Field {
    name: Ident,
    value: Value,
}

enum Value {
    Int(LitInt),
    Bool(LitBool),
    Str(LitStr),
    Word(Ident),
    /// `3 x 360 x 480`
    Dims(Vec<LitInt>, Span),
    Block(Vec<Field>, Span),
    /// `[105.65775, 103.3, -1, 99]`: numbers with their spans.
    Numbers(Vec<(f64, Span)>, Span),
}

impl Value {
    fn span(&self) -> Span {
        match self {
            Value::Int(v) => v.span(),
            Value::Bool(v) => v.span,
            Value::Str(v) => v.span(),
            Value::Word(v) => v.span(),
            Value::Dims(_, s) | Value::Block(_, s) | Value::Numbers(_, s) => *s,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Bool(_) => "`true` or `false`",
            Value::Str(_) => "a string",
            Value::Word(_) => "a name",
            Value::Dims(..) => "dimensions (`3 x H x W`)",
            Value::Block(..) => "a `{ ... }` block",
            Value::Numbers(..) => "a list of numbers",
        }
    }
}

impl Parse for Field {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let value = if input.peek(syn::token::Brace) {
            let content;
            let brace = braced!(content in input);
            let fields = content.parse_terminated(Field::parse, Token![,])?;
            Value::Block(fields.into_iter().collect(), brace.span.join())
        } else if input.peek(LitInt) {
            let first: LitInt = input.parse()?;
            if !first.suffix().is_empty() && first.suffix().starts_with('x') {
                // `3x360x480` lexes as one literal with the suffix `x360x480`.
                let mut dims = vec![LitInt::new(first.base10_digits(), first.span())];
                for part in first.suffix()[1..].split('x') {
                    // `LitInt::new` panics on anything but a number: check first.
                    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                        let shown = if part.is_empty() { "nothing".to_string() } else { format!("`{part}`") };
                        return Err(syn::Error::new(
                            first.span(),
                            format!("`{first}`: every dimension must be a number (found {shown}); write e.g. `3 x 360 x 480`"),
                        ));
                    }
                    dims.push(LitInt::new(part, first.span()));
                }
                Value::Dims(dims, first.span())
            } else if input.peek(Ident) && input.fork().parse::<Ident>().is_ok_and(|i| i == "x") {
                let mut dims = vec![first.clone()];
                while input.peek(Ident) && input.fork().parse::<Ident>().is_ok_and(|i| i == "x") {
                    input.parse::<Ident>()?;
                    dims.push(input.parse()?);
                }
                let span = first.span().join(dims.last().map_or(first.span(), |d| d.span())).unwrap_or(first.span());
                Value::Dims(dims, span)
            } else {
                Value::Int(first)
            }
        } else if input.peek(syn::token::Bracket) {
            let content;
            let bracket = bracketed!(content in input);
            let mut numbers = Vec::new();
            while !content.is_empty() {
                let negative = content.parse::<Option<Token![-]>>()?.is_some();
                let sign = if negative { -1.0 } else { 1.0 };
                let (value, span) = if content.peek(LitFloat) {
                    let lit: LitFloat = content.parse()?;
                    (lit.base10_parse::<f64>()?, lit.span())
                } else {
                    let lit: LitInt = content.parse().map_err(|e| syn::Error::new(e.span(), "expected a number"))?;
                    (lit.base10_parse::<f64>()?, lit.span())
                };
                numbers.push((sign * value, span));
                if !content.is_empty() {
                    content.parse::<Token![,]>()?;
                }
            }
            Value::Numbers(numbers, bracket.span.join())
        } else if input.peek(LitBool) {
            Value::Bool(input.parse()?)
        } else if input.peek(LitStr) {
            Value::Str(input.parse()?)
        } else if input.peek(Ident) {
            Value::Word(input.parse()?)
        } else {
            return Err(input
                .error("expected a value: an integer, `true` / `false`, a string, a name, `[numbers]` or `{ ... }`"));
        };
        Ok(Field { name, value })
    }
}

/// The raw declaration before field checking.
struct RawModel {
    attrs: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    fields: Vec<Field>,
}

impl Parse for RawModel {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let keyword: Ident = input.parse()?;
        if keyword != "model" {
            return Err(syn::Error::new(keyword.span(), "expected `model NAME { ... }`"));
        }
        let name: Ident = input.parse()?;
        let content;
        braced!(content in input);
        let fields = content.parse_terminated(Field::parse, Token![,])?;
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the model's `}`"));
        }
        Ok(RawModel { attrs, vis, name, fields: fields.into_iter().collect() })
    }
}

const FIELDS: [&str; 14] = [
    "input",
    "classes",
    "stage1",
    "stage2",
    "stage3",
    "residual",
    "input_injection",
    "activation",
    "global_context",
    "weights",
    "target",
    "mean",
    "std",
    "labels",
];

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        let e = syn::Error::new(span, message);
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

/// The deepest bracket nesting a description may have. The grammar needs two
/// (`model M { stage1: { ... } }`); the cap keeps the recursive parsers
/// (proc_macro2's lexer, syn, `Field::parse`) far from the end of the stack
/// on hostile text: 100,000 nested braces overflowed it (found by fuzzing).
pub const MAX_NESTING: usize = 16;

const NESTING_ERROR: &str = "brackets nested more than 16 deep; a description nests `{ ... }` blocks two deep";

/// The first group nested deeper than [`MAX_NESTING`], found without recursion.
fn too_deep(tokens: &TokenStream) -> Option<Span> {
    let mut open = vec![tokens.clone().into_iter()];
    while let Some(tokens) = open.last_mut() {
        match tokens.next() {
            Some(TokenTree::Group(group)) if open.len() > MAX_NESTING => return Some(group.span()),
            Some(TokenTree::Group(group)) => open.push(group.stream().into_iter()),
            Some(_) => {}
            None => {
                open.pop();
            }
        }
    }
    None
}

/// Where text first nests brackets deeper than [`MAX_NESTING`] (1-based line
/// and column), skipping strings and comments; checked before tokenizing.
fn text_too_deep(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1, 0);
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if c == '\n' {
            (line, column) = (line + 1, 0);
        } else {
            column += 1;
        }
        match c {
            '\\' if in_string => {
                chars.next();
                column += 1;
            }
            '"' => in_string = !in_string,
            _ if in_string => {}
            '/' if chars.peek() == Some(&'/') => {
                // A line comment: skip to its end (the newline is counted next round).
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some((line, column));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Parses and validates a model description.
pub fn parse_model(tokens: TokenStream) -> Result<ModelDecl, syn::Error> {
    if let Some(span) = too_deep(&tokens) {
        return Err(syn::Error::new(span, NESTING_ERROR));
    }
    let raw: RawModel = syn::parse2(tokens)?;
    let mut errors = Errors::default();
    let mut spans: HashMap<String, Span> = HashMap::new();
    let mut spec = ModelSpec::cityscapes(0, 0);
    spec.name = Some(raw.name.to_string());
    spec.classes = 0;
    let (mut weights, mut target) = (None, RustTarget::Native);
    let mut seen_input = false;
    let mut seen_classes = false;

    let mut seen: HashMap<String, Span> = HashMap::new();
    for field in &raw.fields {
        let key = field.name.to_string();
        if let Some(first) = seen.insert(key.clone(), field.name.span()) {
            errors.push(field.name.span(), format!("duplicate field `{key}`"));
            let _ = first;
            continue;
        }
        spans.insert(key.clone(), field.value.span());
        let v = &field.value;
        match key.as_str() {
            "input" => {
                seen_input = true;
                if let Some([c, h, w]) = dims(v, &mut errors, "input", 3) {
                    if c != 3 {
                        errors.push(v.span(), format!("CGNet takes 3 input channels (RGB), not {c}"));
                    }
                    (spec.height, spec.width) = (h, w);
                    spans.insert("height".into(), v.span());
                    spans.insert("width".into(), v.span());
                }
            }
            "classes" => {
                seen_classes = true;
                spec.classes = int(v, &mut errors, "classes").unwrap_or(1);
            }
            "stage1" => {
                block(v, &mut errors, "stage1", &mut spans, &["channels", "convs"], |name, value, errors| {
                    let n = int(value, errors, name);
                    let Stage1 { channels, convs } = &mut spec.stage1;
                    match name {
                        "channels" => *channels = n.unwrap_or(*channels),
                        _ => *convs = n.unwrap_or(*convs),
                    }
                });
            }
            "stage2" | "stage3" => {
                let stage: &mut CgStage = if key == "stage2" { &mut spec.stage2 } else { &mut spec.stage3 };
                let blocks = if key == "stage2" { &mut spec.stage2_blocks } else { &mut spec.stage3_blocks };
                let fields = ["channels", "blocks", "dilation", "reduction"];
                block(v, &mut errors, &key, &mut spans, &fields, |name, value, errors| {
                    let n = int(value, errors, name);
                    let slot = match name {
                        "channels" => &mut stage.channels,
                        "blocks" => &mut *blocks,
                        "dilation" => &mut stage.dilation,
                        _ => &mut stage.reduction,
                    };
                    *slot = n.unwrap_or(*slot);
                });
                if let Some(s) = spans.get(&format!("{key}.blocks")).copied() {
                    spans.insert(format!("{key}_blocks"), s);
                }
            }
            "residual" => {
                if let Some(w) = word(v, &mut errors, "residual", &["global", "local", "none"]) {
                    spec.residual = match w.as_str() {
                        "global" => Residual::Global,
                        "local" => Residual::Local,
                        _ => Residual::None,
                    };
                }
            }
            "activation" => {
                if let Some(w) = word(v, &mut errors, "activation", &["prelu", "relu"]) {
                    spec.activation = if w == "prelu" { Activation::Prelu } else { Activation::Relu };
                }
            }
            "input_injection" => spec.input_injection = boolean(v, &mut errors, &key).unwrap_or(true),
            "global_context" => spec.global_context = boolean(v, &mut errors, &key).unwrap_or(true),
            "mean" => spec.mean = numbers::<3>(v, &mut errors, "mean", Numbers::Real),
            "std" => spec.std = numbers::<3>(v, &mut errors, "std", Numbers::Real),
            "labels" => match v {
                Value::Block(classes, _) => {
                    let mut labels = Vec::new();
                    for class in classes {
                        let name = class.name.to_string();
                        let field = format!("labels.{name}");
                        if let Some(colour) = numbers::<3>(&class.value, &mut errors, &field, Numbers::Byte) {
                            labels.push(Label { name, colour: colour.map(|c| c as u8) });
                        }
                    }
                    spec.labels = Some(labels);
                }
                other => errors.push(
                    other.span(),
                    format!("`labels` takes `{{ NAME: [R, G, B], ... }}` in class order, not {}", other.kind()),
                ),
            },
            "weights" => match v {
                Value::Str(s) => weights = Some(s.clone()),
                other => errors.push(other.span(), format!("`weights` takes a string path, not {}", other.kind())),
            },
            "target" => {
                if let Some(w) = word(v, &mut errors, "target", &["scalar", "avx2", "avx512", "neon", "native", "gpu"])
                {
                    target = match w.as_str() {
                        "scalar" => RustTarget::Scalar,
                        "avx2" => RustTarget::Avx2,
                        "avx512" => RustTarget::Avx512,
                        "neon" => RustTarget::Neon,
                        "gpu" => RustTarget::Gpu,
                        _ => RustTarget::Native,
                    };
                }
            }
            _ => match FIELDS.iter().find(|f| edit_distance(f, &key) <= 2) {
                Some(known) => {
                    errors.push(field.name.span(), format!("unknown field `{key}`; did you mean `{known}`?"));
                    // The intended field is there, misspelt: do not also report it missing.
                    seen_input |= *known == "input";
                    seen_classes |= *known == "classes";
                }
                None => errors
                    .push(field.name.span(), format!("unknown field `{key}`; expected one of: {}", FIELDS.join(", "))),
            },
        }
    }
    for (present, name) in [(seen_input, "input"), (seen_classes, "classes")] {
        if !present {
            errors.push(raw.name.span(), format!("missing required field `{name}`"));
        }
    }
    if seen_input && seen_classes && errors.0.is_none() {
        if let Err(crate::spec::SpecError::Invalid(messages)) = spec.validate() {
            for m in messages {
                // Point at the field the message names (`stage3.reduction` ...), else at the model.
                let field = m.split('`').nth(1).unwrap_or_default();
                let span = spans.get(field).copied().unwrap_or(raw.name.span());
                errors.push(span, m);
            }
        }
    }
    match errors.0 {
        Some(e) => Err(e),
        None => Ok(ModelDecl { attrs: raw.attrs, vis: raw.vis, name: raw.name, spec, weights, target }),
    }
}

fn int(v: &Value, errors: &mut Errors, name: &str) -> Option<usize> {
    match v {
        Value::Int(i) => match i.base10_parse::<usize>() {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(i.span(), format!("`{name}`: {e}"));
                None
            }
        },
        other => {
            errors.push(other.span(), format!("`{name}` takes an integer, not {}", other.kind()));
            None
        }
    }
}

/// What the numbers of a list may be.
#[derive(Clone, Copy, PartialEq)]
enum Numbers {
    Real,
    /// Integers in 0..=255 (colour channels).
    Byte,
}

/// A list of exactly `N` numbers of one kind.
fn numbers<const N: usize>(v: &Value, errors: &mut Errors, name: &str, kind: Numbers) -> Option<[f32; N]> {
    let Value::Numbers(values, span) = v else {
        errors.push(v.span(), format!("`{name}` takes a list of {N} numbers like `[1, 2, 3]`, not {}", v.kind()));
        return None;
    };
    if values.len() != N {
        errors.push(*span, format!("`{name}` takes {N} numbers, found {}", values.len()));
        return None;
    }
    let mut out = [0.0; N];
    for (slot, (value, span)) in out.iter_mut().zip(values) {
        if kind == Numbers::Byte && !(value.fract() == 0.0 && (0.0..=255.0).contains(value)) {
            errors.push(*span, format!("`{name}`: {value} is not an integer in 0..=255"));
            return None;
        }
        *slot = *value as f32;
    }
    Some(out)
}

fn boolean(v: &Value, errors: &mut Errors, name: &str) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(b.value),
        other => {
            errors.push(other.span(), format!("`{name}` takes `true` or `false`, not {}", other.kind()));
            None
        }
    }
}

fn word(v: &Value, errors: &mut Errors, name: &str, allowed: &[&str]) -> Option<String> {
    match v {
        Value::Word(w) if allowed.iter().any(|a| w == a) => Some(w.to_string()),
        Value::Word(w) => {
            errors.push(w.span(), format!("unknown {name} `{w}`; expected one of: {}", allowed.join(", ")));
            None
        }
        other => {
            errors.push(other.span(), format!("`{name}` takes one of {}, not {}", allowed.join(", "), other.kind()));
            None
        }
    }
}

fn dims<const N: usize>(v: &Value, errors: &mut Errors, name: &str, _n: usize) -> Option<[usize; N]> {
    let Value::Dims(parts, span) = v else {
        errors.push(v.span(), format!("`{name}` takes dimensions like `3 x 360 x 480`, not {}", v.kind()));
        return None;
    };
    if parts.len() != N {
        errors.push(*span, format!("`{name}` takes {N} dimensions (`3 x H x W`), found {}", parts.len()));
        return None;
    }
    let mut out = [0; N];
    for (slot, lit) in out.iter_mut().zip(parts) {
        match lit.base10_parse::<usize>() {
            Ok(n) => *slot = n,
            Err(e) => {
                errors.push(lit.span(), format!("`{name}`: {e}"));
                return None;
            }
        }
    }
    Some(out)
}

/// A `{ name: value, ... }` block of known fields.
fn block(
    v: &Value,
    errors: &mut Errors,
    name: &str,
    spans: &mut HashMap<String, Span>,
    allowed: &[&str],
    mut set: impl FnMut(&str, &Value, &mut Errors),
) {
    let Value::Block(fields, _) = v else {
        errors.push(v.span(), format!("`{name}` takes a `{{ ... }}` block, not {}", v.kind()));
        return;
    };
    let mut seen = Vec::new();
    for f in fields {
        let key = f.name.to_string();
        if !allowed.contains(&key.as_str()) {
            errors
                .push(f.name.span(), format!("unknown field `{name}.{key}`; expected one of: {}", allowed.join(", ")));
        } else if seen.contains(&key) {
            errors.push(f.name.span(), format!("duplicate field `{name}.{key}`"));
        } else {
            spans.insert(format!("{name}.{key}"), f.value.span());
            set(&key, &f.value, errors);
            seen.push(key);
        }
    }
}

/// Parses a `.cgnet` file; errors are rendered as `path:line:column: message`.
pub fn parse_file(path: &std::path::Path) -> Result<ModelDecl, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_text(&text, &path.display().to_string())
}

/// Parses description text; `origin` names it in errors.
pub fn parse_text(text: &str, origin: &str) -> Result<ModelDecl, String> {
    if let Some((line, column)) = text_too_deep(text) {
        return Err(format!("{origin}:{line}:{column}: {NESTING_ERROR}"));
    }
    let tokens: TokenStream = text.parse().map_err(|e| format!("{origin}: cannot tokenize: {e}"))?;
    parse_model(tokens).map_err(|e| {
        e.into_iter()
            .map(|e| {
                let start = e.span().start();
                format!("{origin}:{}:{}: {e}", start.line, start.column + 1)
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn errors(tokens: TokenStream) -> Vec<String> {
        match parse_model(tokens) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn preprocessing_and_labels() {
        let decl = parse_model(quote! {
            model M {
                input: 3 x 64 x 64, classes: 2,
                mean: [1, 2.5, -3.25], std: [58.4, 57.1, 57.4],
                labels: { road: [128, 64, 128], sky: [70, 130, 180] },
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decl.spec.normalisation(), ([1.0, 2.5, -3.25], [58.4, 57.1, 57.4]));
        let labels = decl.spec.labels.expect("labels");
        assert_eq!((labels[1].name.as_str(), labels[1].colour), ("sky", [70, 130, 180]));
        let e = errors(quote! {
            model M {
                input: 3 x 64 x 64, classes: 3,
                mean: [1, 2], std: [1, 0, 1],
                labels: { road: [128, 64, 300], sky: [70, 130, 1.5], sea: road },
            }
        });
        let expected = [
            "`mean` takes 3 numbers, found 2",
            "`labels.road`: 300 is not an integer in 0..=255",
            "`labels.sky`: 1.5 is not an integer in 0..=255",
            "`labels.sea` takes a list of 3 numbers",
        ];
        for (message, expected) in e.iter().zip(expected) {
            assert!(message.starts_with(expected), "{message}");
        }
        let e = errors(quote! {
            model M { input: 3 x 64 x 64, classes: 3, std: [1, 0, 1], labels: { a: [1, 2, 3], a: [4, 5, 6] } }
        });
        assert!(e.iter().any(|m| m.contains("`std` [1.0, 0.0, 1.0] must be positive")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("`labels` names 2 classes; the model has 3")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("`labels` names `a` twice")), "{e:?}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = |n: usize| {
            format!("model M {{ input: 3 x 64 x 64, classes: 3, stage1: {}1{} }}", "{ a: ".repeat(n), " }".repeat(n))
        };
        // 100,000 levels overflowed the stack before the depth check.
        let err = parse_text(&deep(100_000), "deep.cgnet").err().expect("an error");
        assert!(err.starts_with("deep.cgnet:1:"), "{err}");
        assert!(err.contains("nested more than 16 deep"), "{err}");
        let err = parse_text(&format!("model M {{ x: {}{} }}", "([".repeat(50_000), "])".repeat(50_000)), "p")
            .err()
            .expect("an error");
        assert!(err.contains("nested more than 16 deep"), "{err}");
        // Brackets in strings and comments do not count.
        let quoted = format!(
            "// {}\nmodel M {{ input: 3 x 64 x 64, classes: 3, weights: \"{}\" }}",
            "(".repeat(40),
            "{".repeat(40)
        );
        assert!(parse_text(&quoted, "q").is_ok());
        // The macro's tokens are checked too.
        let mut tokens: TokenStream = "1".parse().unwrap();
        for _ in 0..40 {
            tokens =
                TokenStream::from(TokenTree::Group(proc_macro2::Group::new(proc_macro2::Delimiter::Brace, tokens)));
        }
        let e = errors(quote! { model M { input: 3 x 64 x 64, classes: 3, stage1: #tokens } });
        assert!(e[0].contains("nested more than 16 deep"), "{e:?}");
    }

    #[test]
    fn the_documented_example_parses() {
        let decl = parse_model(quote! {
            /// CGNet-M3N21 trained on CamVid (11 classes).
            pub model CamVid {
                input: 3 x 360 x 480,
                classes: 11,
                stage1: { channels: 32, convs: 3 },
                stage2: { channels: 64, blocks: 3, dilation: 2, reduction: 8 },
                stage3: { channels: 128, blocks: 21, dilation: 4, reduction: 16 },
                residual: global,
                input_injection: true,
                activation: prelu,
                global_context: true,
                weights: "weights/cgnet_camvid.safetensors",
                target: native,
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decl.name, "CamVid");
        assert_eq!((decl.spec.height, decl.spec.width, decl.spec.classes), (360, 480, 11));
        assert_eq!((decl.spec.stage2_blocks, decl.spec.stage3_blocks), (3, 21));
        assert_eq!(decl.weights.unwrap().value(), "weights/cgnet_camvid.safetensors");
        assert_eq!(decl.target, RustTarget::Native);
        assert_eq!(decl.attrs.len(), 1);
    }

    #[test]
    fn compact_dimensions_and_defaults() {
        let decl = parse_model(quote! { model M { input: 3x64x128, classes: 19 } }).unwrap();
        assert_eq!(decl.spec, {
            let mut s = ModelSpec::cityscapes(64, 128);
            s.name = Some("M".into());
            s
        });
    }

    #[test]
    fn compact_dimensions_that_are_not_numbers_are_errors() {
        for (text, found) in [("3xHxW", "`H`"), ("3x64x", "nothing"), ("3x64xx128", "nothing")] {
            let tokens: TokenStream = format!("model M {{ input: {text}, classes: 19 }}").parse().unwrap();
            let e = errors(tokens);
            let expected =
                format!("`{text}`: every dimension must be a number (found {found}); write e.g. `3 x 360 x 480`");
            assert_eq!(e, [expected], "{text}");
        }
    }

    #[test]
    fn all_mistakes_are_reported_together() {
        let e = errors(quote! {
            model M {
                input: 3 x 64 x 64,
                clases: 4,
                residual: sideways,
                stage2: { channels: 64, blocks: "three" },
                stage2: { channels: 64 },
                target: tpu,
            }
        });
        assert!(e.iter().any(|m| m == "unknown field `clases`; did you mean `classes`?"), "{e:?}");
        assert!(e.iter().any(|m| m.starts_with("unknown residual `sideways`")), "{e:?}");
        assert!(e.iter().any(|m| m == "`blocks` takes an integer, not a string"), "{e:?}");
        assert!(e.iter().any(|m| m == "duplicate field `stage2`"), "{e:?}");
        assert!(e.iter().any(|m| m.starts_with("unknown target `tpu`")), "{e:?}");
        assert!(!e.iter().any(|m| m.starts_with("missing required field")), "a typo is one error: {e:?}");
        let e = errors(quote! { model M { input: 3 x 64 x 64, colour: 1 } });
        assert!(e.iter().any(|m| m.starts_with("unknown field `colour`; expected one of: input, classes")), "{e:?}");
        assert!(e.iter().any(|m| m == "missing required field `classes`"), "{e:?}");
    }

    #[test]
    fn spec_violations_point_at_their_field() {
        let text = "model M {\n  input: 3 x 64 x 64,\n  classes: 4,\n  stage3: { channels: 128, reduction: 7 },\n}";
        let err = parse_text(text, "m.cgnet").err().unwrap();
        assert!(err.starts_with("m.cgnet:4:39: `stage3.reduction` (7) must divide"), "{err}");
    }
}
