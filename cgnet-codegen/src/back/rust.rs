//! The Rust backend: `cgnet!` expansions. A model becomes a type whose `run`,
//! `scores` and `segment` are straight-line calls into cgnet-runtime's kernels
//! with every view, stride and weight offset a literal constant.
//!
//! The macro (`cgnet-dsl`) is a thin shim over [`expand_macro`]. Weight files
//! named in the description are read and checked while the user's crate
//! compiles, and tracked with `include_bytes!` so that editing them rebuilds it.

use std::path::{Path, PathBuf};

use cgnet_runtime::program::{Act, Epilogue, FieldValue, Mem, Step, View, ALL_ROWS};
use cgnet_runtime::recipe::{Derivation, Layout};
use cgnet_runtime::{WeightError, Weights};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, ToTokens};
use syn::Ident;

use super::{compile, compile_streaming, CompiledModel};
use crate::ir::Graph;
use crate::lower;
use crate::stream::Streaming;
use crate::syntax::{parse_model, ModelDecl, RustTarget};

/// The whole macro: description tokens in, items out. Errors become
/// `compile_error!`s at their spans, plus a stub of the type so that one
/// mistake gives one message.
pub fn expand_macro(input: TokenStream) -> TokenStream {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_default();
    match parse_model(input.clone()).and_then(|decl| build(&decl, &manifest_dir).map(|out| (decl, out))) {
        Ok((decl, (model, gpu, weights_file))) => {
            expand(&decl, &model, Emit::Macro { weights_file: weights_file.as_deref(), gpu: gpu.as_ref() })
        }
        Err(errors) => {
            let stub = stub_name(input).map(|(vis, name)| stub(&vis, &name));
            let errors = errors.to_compile_error();
            quote! { #errors #stub }
        }
    }
}

/// The CPU program, and with `target: gpu` the GPU's (unstreamed).
type Built = (CompiledModel, Option<CompiledModel>, Option<PathBuf>);

/// Reads and checks the weights (when named) and compiles the model: for the
/// CPU, and with `target: gpu` also without streamed regions for the GPU.
fn build(decl: &ModelDecl, manifest_dir: &Path) -> Result<Built, syn::Error> {
    let mut graph: Graph = lower(&decl.spec);
    let both = |graph: &Graph, sha: &str, span: Span| {
        let error = |e| syn::Error::new(span, e);
        let model = compile(&decl.spec, graph, sha).map_err(error)?;
        let gpu = match decl.target {
            RustTarget::Gpu => Some(compile_streaming(&decl.spec, graph, sha, Streaming::Off).map_err(error)?),
            _ => None,
        };
        Ok::<_, syn::Error>((model, gpu))
    };
    let Some(lit) = &decl.weights else {
        // No weights at compile time: the program layout does not depend on their values.
        super::program::bind_zero_weights(&mut graph);
        let (model, gpu) = both(&graph, "none (loaded at run time)", decl.name.span())?;
        return Ok((model, gpu, None));
    };
    let path = manifest_dir.join(lit.value());
    let bytes = std::fs::read(&path).map_err(|e| {
        let message = format!("cannot read weights file `{}` (relative to the crate's Cargo.toml): {e}", lit.value());
        syn::Error::new(lit.span(), message)
    })?;
    let weights = Weights::from_bytes(&bytes, &lit.value(), &graph.expected_weights())
        .map_err(|e| weight_errors(&e, lit.span()))?;
    graph.bind(&weights);
    let sha = super::program::sha256_hex(&bytes);
    let (model, gpu) = both(&graph, &sha, lit.span())?;
    Ok((model, gpu, Some(path)))
}

/// One error per problem of a weight file, all at the path's span.
fn weight_errors(e: &WeightError, span: Span) -> syn::Error {
    let mut all = syn::Error::new(span, e.to_string());
    for detail in e.details() {
        all.combine(syn::Error::new(span, detail));
    }
    all
}

/// `(visibility, name)` of a description that did not parse, for the stub.
fn stub_name(input: TokenStream) -> Option<(syn::Visibility, Ident)> {
    struct Head(syn::Visibility, Ident);
    impl syn::parse::Parse for Head {
        fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
            input.call(syn::Attribute::parse_outer)?;
            let vis = input.parse()?;
            let _model: Ident = input.parse()?;
            let name = input.parse()?;
            input.parse::<proc_macro2::TokenTree>()?;
            Ok(Head(vis, name))
        }
    }
    syn::parse2::<Head>(input).ok().map(|h| (h.0, h.1))
}

/// The public API of a model with no body, so that code using it type-checks
/// while the real error is reported once.
fn stub(vis: &syn::Visibility, name: &Ident) -> TokenStream {
    quote! {
        #vis struct #name;
        #[allow(dead_code, unused_variables, clippy::all)]
        impl #name {
            pub const INPUT_SHAPE: [usize; 4] = [1, 3, 0, 0];
            pub const LOGITS_SHAPE: [usize; 4] = [1, 0, 0, 0];
            pub const SCORES_SHAPE: [usize; 4] = [1, 0, 0, 0];
            pub const LABELS_LEN: usize = 0;
            pub const ARENA_BYTES: usize = 0;
            pub const PARAMETERS: usize = 0;
            pub const MACS: u64 = 0;
            pub fn new() -> Self { unreachable!() }
            pub fn from_safetensors_bytes(bytes: &[u8]) -> ::core::result::Result<Self, ::cgnet::runtime::ModelError> { unreachable!() }
            pub fn from_path(path: impl AsRef<::std::path::Path>) -> ::core::result::Result<Self, ::cgnet::runtime::ModelError> { unreachable!() }
            pub fn new_arena() -> ::cgnet::runtime::Arena { unreachable!() }
            pub fn run(&self, input: &[f32], arena: &mut [f32], logits: &mut [f32]) -> ::core::result::Result<(), ::cgnet::runtime::ModelError> { unreachable!() }
            pub fn scores(&self, input: &[f32], arena: &mut [f32], scores: &mut [f32]) -> ::core::result::Result<(), ::cgnet::runtime::ModelError> { unreachable!() }
            pub fn segment(&self, input: &[f32], arena: &mut [f32], labels: &mut [u8]) -> ::core::result::Result<(), ::cgnet::runtime::ModelError> { unreachable!() }
            pub fn run_rgb8(&self, picture: &[u8], arena: &mut [f32], logits: &mut [f32]) -> ::core::result::Result<(), ::cgnet::runtime::ModelError> { unreachable!() }
            pub fn scores_rgb8(&self, picture: &[u8], arena: &mut [f32], scores: &mut [f32]) -> ::core::result::Result<(), ::cgnet::runtime::ModelError> { unreachable!() }
            pub fn segment_rgb8(&self, picture: &[u8], arena: &mut [f32], labels: &mut [u8]) -> ::core::result::Result<(), ::cgnet::runtime::ModelError> { unreachable!() }
        }
    }
}

/// An integer literal without a type suffix (`12`, not `12usize`), for readable expansions.
fn n(value: usize) -> proc_macro2::Literal {
    proc_macro2::Literal::usize_unsuffixed(value)
}

fn view(v: &View) -> TokenStream {
    let mem = match v.mem {
        Mem::Arena => quote!(Arena),
        Mem::Input => quote!(Input),
        Mem::Logits => quote!(Logits),
        Mem::Scores => quote!(Scores),
        Mem::Labels => quote!(Labels),
        Mem::Rgb8 => quote!(Rgb8),
    };
    let [offset, c, h, w, row_stride, pixel_stride, channel_stride] =
        [v.offset, v.c, v.h, v.w, v.row_stride, v.pixel_stride, v.channel_stride].map(n);
    let row_mask = if v.row_mask == ALL_ROWS { quote!(ALL_ROWS) } else { n(v.row_mask).into_token_stream() };
    quote! {
        View { mem: Mem::#mem, offset: #offset, c: #c, h: #h, w: #w, row_stride: #row_stride, pixel_stride: #pixel_stride, channel_stride: #channel_stride, row_mask: #row_mask }
    }
}

fn act(a: &Act) -> TokenStream {
    match a {
        Act::None => quote!(Act::None),
        Act::Relu => quote!(Act::Relu),
        Act::Prelu(o) => {
            let o = n(*o);
            quote!(Act::Prelu(#o))
        }
    }
}

fn epilogue(e: &Epilogue) -> TokenStream {
    let (a, a2) = (act(&e.act), act(&e.act2));
    let affine = match e.affine {
        Some((s, t)) => {
            let (s, t) = (n(s), n(t));
            quote!(Some((#s, #t)))
        }
        None => quote!(None),
    };
    quote!(Epilogue { act: #a, affine: #affine, act2: #a2 })
}

/// A step as a Rust literal, field by field from the step schema.
pub fn step_literal(s: &Step) -> TokenStream {
    let (variant, _, schema, values) = s.parts();
    let (variant, ty) = (format_ident!("{variant}"), format_ident!("{}", schema.name));
    let fields = schema.fields.iter().zip(&values).map(|((name, _), value)| {
        let name = format_ident!("{name}");
        let value = match value {
            FieldValue::View(v) => view(v),
            FieldValue::Size(x) => {
                let x = n(*x);
                quote!(#x)
            }
            FieldValue::Epilogue(e) => epilogue(e),
            FieldValue::OptionalSize(Some(x)) => {
                let x = n(*x);
                quote!(Some(#x))
            }
            FieldValue::OptionalView(Some(v)) => {
                let v = view(v);
                quote!(Some(#v))
            }
            FieldValue::OptionalSize(None) | FieldValue::OptionalView(None) => quote!(None),
        };
        quote!(#name: #value)
    });
    quote!(Step::#variant(#ty { #(#fields),* }))
}

fn derivation(d: &Derivation<usize>) -> TokenStream {
    let bn = |b: &[usize; 4]| {
        let b = b.map(n);
        quote!([#(#b),*])
    };
    let eps = |e: f32| proc_macro2::Literal::f32_suffixed(e);
    match d {
        Derivation::BnScale { bn: b, eps: e } => {
            let (b, e) = (bn(b), eps(*e));
            quote!(Derivation::BnScale { bn: #b, eps: #e })
        }
        Derivation::BnShift { bn: b, eps: e } => {
            let (b, e) = (bn(b), eps(*e));
            quote!(Derivation::BnShift { bn: #b, eps: #e })
        }
        Derivation::FoldWeight { weight, bn: b, eps: e, start, per_out } => {
            let (b, e) = (bn(b), eps(*e));
            let [weight, start, per_out] = [*weight, *start, *per_out].map(n);
            quote!(Derivation::FoldWeight { weight: #weight, bn: #b, eps: #e, start: #start, per_out: #per_out })
        }
        Derivation::FoldBias { bn: b, eps: e, bias, start, len } => {
            let (b, e) = (bn(b), eps(*e));
            let bias = match bias {
                Some(i) => {
                    let i = n(*i);
                    quote!(Some(#i))
                }
                None => quote!(None),
            };
            let [start, len] = [*start, *len].map(n);
            quote!(Derivation::FoldBias { bn: #b, eps: #e, bias: #bias, start: #start, len: #len })
        }
        Derivation::Slice { of, start, len } => {
            let [of, start, len] = [*of, *start, *len].map(n);
            quote!(Derivation::Slice { of: #of, start: #start, len: #len })
        }
        Derivation::SliceInputs { of, ci, per_in, start, len } => {
            let [of, ci, per_in, start, len] = [*of, *ci, *per_in, *start, *len].map(n);
            quote!(Derivation::SliceInputs { of: #of, ci: #ci, per_in: #per_in, start: #start, len: #len })
        }
    }
}

fn layout(l: &Layout) -> TokenStream {
    match l {
        Layout::Dense => quote!(Layout::Dense),
        Layout::PerChannel => quote!(Layout::PerChannel),
        Layout::Conv { co, ci, k } => {
            let [co, ci, k] = [*co, *ci, *k].map(n);
            quote!(Layout::Conv { co: #co, ci: #ci, k: #k })
        }
        Layout::Winograd { co, ci } => {
            let [co, ci] = [*co, *ci].map(n);
            quote!(Layout::Winograd { co: #co, ci: #ci })
        }
        Layout::Depthwise { c } => {
            let c = n(*c);
            quote!(Layout::Depthwise { c: #c })
        }
    }
}

/// The packing recipe as a `Recipe<'static>` constant expression.
fn recipe(model: &CompiledModel) -> TokenStream {
    let r = &model.recipe;
    let tensors = r.tensors.iter().map(|(key, shape)| {
        let shape = shape.iter().map(|d| n(*d));
        quote!(FileTensor { key: #key, shape: &[#(#shape),*] })
    });
    let derived = r.derived.iter().map(derivation);
    let placements = r.placements.iter().map(|p| {
        let (value, offset, l) = (n(p.value), n(p.offset), layout(&p.layout));
        quote!(Placement { value: #value, layout: #l, offset: #offset })
    });
    let (len, fingerprint) = (n(r.len), &r.fingerprint);
    quote! {
        Recipe {
            tensors: &[#(#tensors),*],
            derived: &[#(#derived),*],
            placements: &[#(#placements),*],
            len: #len,
            fingerprint: #fingerprint,
        }
    }
}

/// Where an expansion finds the runtime and the packed weights.
pub enum Emit<'a> {
    /// Inside a user's crate: `::cgnet::runtime`; the weights (when the
    /// description names `weights_file`) embedded as a byte string.
    /// `gpu`: the GPU's program (`target: gpu`), compiled without streaming.
    Macro { weights_file: Option<&'a Path>, gpu: Option<&'a CompiledModel> },
    /// A standalone module (`cgnetc build --target rust`): `::cgnet_runtime`;
    /// the packed weights in the file `weights_blob` beside it.
    Standalone { weights_blob: &'a str },
}

/// The expansion of a checked description.
pub fn expand(decl: &ModelDecl, model: &CompiledModel, emit: Emit<'_>) -> TokenStream {
    let (attrs, vis, name) = (&decl.attrs, &decl.vis, &decl.name);
    let rt = match emit {
        Emit::Macro { .. } => quote!(::cgnet::runtime),
        Emit::Standalone { .. } => quote!(::cgnet_runtime),
    };
    let steps_mod = format_ident!("__cgnet_steps_{}", name.to_string().to_lowercase());
    let [h, w, c, lh, lw, arena_bytes, parameters] =
        [model.height, model.width, model.classes, model.logits.h, model.logits.w, model.arena_bytes, model.parameters]
            .map(n);
    let macs = proc_macro2::Literal::u64_unsuffixed(model.macs);
    let recipe = recipe(model);
    let fingerprint = &model.recipe.fingerprint;
    let isa = match decl.target {
        RustTarget::Scalar => quote!(#rt::kernels::Isa::Scalar),
        RustTarget::Avx2 => quote!(#rt::kernels::Isa::Avx2),
        RustTarget::Avx512 => quote!(#rt::kernels::Isa::Avx512),
        RustTarget::Neon => quote!(#rt::kernels::Isa::Neon),
        RustTarget::Native | RustTarget::Gpu => quote!(#rt::kernels::Isa::detect()),
    };
    let gpu = match decl.target {
        RustTarget::Gpu => {
            let gpu_model = match emit {
                Emit::Macro { gpu: Some(gpu), .. } => gpu,
                _ => model,
            };
            gpu_entry_points(gpu_model, &rt).unwrap_or_else(|e| quote!(compile_error!(#e);))
        }
        _ => TokenStream::new(),
    };
    let names: Vec<Ident> = (0..model.steps.len()).map(|i| format_ident!("S{i}")).collect();
    let steps: Vec<TokenStream> = model.steps.iter().map(step_literal).collect();
    // The steps that read the input have a second form reading an 8-bit picture.
    let (picture_names, picture_steps): (Vec<Ident>, Vec<TokenStream>) = model
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, step)| Some((format_ident!("S{i}_RGB8"), step_literal(&step.reading_rgb8()?))))
        .unzip();
    // One call per group: `step` for a step alone, `steps` for a group (its
    // steps copied into an array on the stack).
    let operand = |i: usize| {
        let name = &names[i];
        if model.steps[i].reading_rgb8().is_some() {
            let picture_name = format_ident!("{name}_RGB8");
            quote!(if picture { #steps_mod::#picture_name } else { #steps_mod::#name })
        } else {
            quote!(#steps_mod::#name)
        }
    };
    let body_calls = model.calls.iter().map(|call| {
        let group = &call.steps;
        let whole = call.is_whole(&model.steps);
        let (start, end) = (n(call.rows.start), n(call.rows.end));
        match (group.len(), whole) {
            (1, true) => {
                let step = operand(group.start);
                quote!(exec.step(&#step)?;)
            }
            (_, true) => {
                let steps = group.clone().map(operand);
                quote!(exec.steps(&[#(#steps),*])?;)
            }
            // A band of a streamed region.
            (_, false) => {
                let steps = group.clone().map(operand);
                quote!(exec.steps_rows(&[#(#steps),*], #start..#end)?;)
            }
        }
    });
    let [run_tail, scores_tail, segment_tail] =
        [&model.tails.run, &model.tails.scores, &model.tails.segment].map(step_literal);
    let normalisation = model.normalisation();
    let floats = |v: [f32; 3]| v.map(proc_macro2::Literal::f32_suffixed);
    let [mean, std, inv_std] = [normalisation.mean, model.spec.normalisation().1, normalisation.inv_std].map(floats);
    let entry_points = entry_points(model, &rt);
    let doc = format!(
        " CGNet compiled by cgnet {}: input 1x3x{}x{}, {} classes, {} parameters, {} MACs, arena {} bytes.",
        env!("CARGO_PKG_VERSION"),
        model.height,
        model.width,
        model.classes,
        model.parameters,
        model.macs,
        model.arena_bytes
    );
    // The packed weights, as little-endian bytes in a 64-byte aligned static:
    // `new()` borrows them (no allocation, no packing).
    let len = n(model.weights.len() * 4);
    let packed = match emit {
        Emit::Macro { weights_file: None, .. } => None,
        Emit::Macro { weights_file: Some(p), .. } => {
            let path = p.display().to_string();
            let bytes: Vec<u8> = model.weights.iter().flat_map(|v| v.to_le_bytes()).collect();
            let blob = proc_macro2::Literal::byte_string(&bytes);
            Some(quote! {
                /// The weights compiled in, packed (little-endian f32, 64-byte aligned).
                pub static PACKED: #rt::model::Aligned64<[u8; #len]> = #rt::model::Aligned64(*#blob);
                /// Tracks the weight file: editing it rebuilds this crate.
                const _: &[u8] = include_bytes!(#path);
            })
        }
        Emit::Standalone { weights_blob } => Some(quote! {
            /// The weights compiled in, packed (little-endian f32, 64-byte aligned).
            pub static PACKED: #rt::model::Aligned64<[u8; #len]> = #rt::model::Aligned64(*include_bytes!(#weights_blob));
        }),
    };
    let embedded = packed.map(|packed| {
        (
            packed,
            quote! {
                /// The model with the weights it was compiled with (checked when it was
                /// compiled): borrows the packed weights compiled in, allocates nothing.
                pub fn new() -> Self {
                    Self { weights: #rt::model::PackedWeights::compiled_in(#rt::model::packed_floats(&#steps_mod::PACKED.0)), isa: #isa }
                }
            },
        )
    });
    let (packed_static, new_fn) = embedded.unzip();
    quote! {
        #(#attrs)*
        #[doc = #doc]
        #vis struct #name {
            weights: #rt::model::PackedWeights,
            isa: #rt::kernels::Isa,
        }

        #[doc(hidden)]
        #[allow(non_snake_case, clippy::all)]
        mod #steps_mod {
            use #rt::program::*;
            use #rt::recipe::*;
            #[cfg(target_endian = "big")]
            compile_error!("cgnet embeds little-endian packed weights; big-endian targets are not supported");
            #packed_static
            /// How the packed weights are made from a weight file (executed by cgnet-runtime).
            pub const RECIPE: Recipe<'static> = #recipe;
            #(pub const #names: Step = #steps;)*
            #(pub const #picture_names: Step = #picture_steps;)*
            pub const RUN_TAIL: Step = #run_tail;
            pub const SCORES_TAIL: Step = #scores_tail;
            pub const SEGMENT_TAIL: Step = #segment_tail;
        }

        #[allow(dead_code, clippy::all)]
        impl #name {
            pub const INPUT_SHAPE: [usize; 4] = [1, 3, #h, #w];
            pub const LOGITS_SHAPE: [usize; 4] = [1, #c, #lh, #lw];
            pub const SCORES_SHAPE: [usize; 4] = [1, #c, #h, #w];
            pub const LABELS_LEN: usize = #h * #w;
            /// Bytes of the arena `run`, `scores` and `segment` need.
            pub const ARENA_BYTES: usize = #arena_bytes;
            pub const PARAMETERS: usize = #parameters;
            pub const MACS: u64 = #macs;
            /// Per-channel (RGB) mean and standard deviation of the model's input: the
            /// `*_rgb8` entry points compute `(byte - MEAN[c]) * (1 / STD[c])` in f32
            /// (`NORMALISATION`), the float ones take the result as their input.
            pub const MEAN: [f32; 3] = [#(#mean),*];
            pub const STD: [f32; 3] = [#(#std),*];
            pub const NORMALISATION: #rt::program::Normalisation =
                #rt::program::Normalisation { mean: Self::MEAN, inv_std: [#(#inv_std),*] };
            /// Identifies the packed-weights layout (spec, packing recipe, cgnet version).
            pub const WEIGHTS_FINGERPRINT: &'static str = #fingerprint;

            #new_fn

            #gpu

            /// The model with weights from a `.safetensors` file's bytes (authors' keys),
            /// checked and packed by the recipe compiled in.
            pub fn from_safetensors_bytes(bytes: &[u8]) -> ::core::result::Result<Self, #rt::ModelError> {
                let weights = #steps_mod::RECIPE.pack(bytes, "weights")?;
                Ok(Self { weights: #rt::model::PackedWeights::packed(&weights), isa: #isa })
            }

            /// The model with weights from a `.safetensors` file.
            pub fn from_path(path: impl AsRef<::std::path::Path>) -> ::core::result::Result<Self, #rt::ModelError> {
                let path = path.as_ref();
                let bytes = ::std::fs::read(path)
                    .map_err(|source| #rt::ModelError::Io { path: path.display().to_string(), source })?;
                Self::from_safetensors_bytes(&bytes)
            }

            /// An arena of `ARENA_BYTES`, 64-byte aligned; allocate once, reuse for every call.
            pub fn new_arena() -> #rt::Arena {
                #rt::Arena::new(Self::ARENA_BYTES)
            }

            /// The program without its tail; `picture`: the input is an 8-bit picture.
            fn body(exec: &#rt::kernels::Exec<'_>, picture: bool) -> ::core::result::Result<(), #rt::kernels::KernelError> {
                #(#body_calls)*
                Ok(())
            }

            /// Checks the output's length, runs the body and the output's tail.
            fn call(
                &self,
                input: #rt::kernels::Input<'_>,
                arena: &mut [f32],
                output: #rt::model::Output<'_>,
                parallel: Option<&dyn #rt::kernels::ParallelFor>,
            ) -> ::core::result::Result<(), #rt::ModelError> {
                let tail = match &output {
                    #rt::model::Output::Logits(x) => { #rt::model::check_len("logits", x.len(), #c * #lh * #lw)?; &#steps_mod::RUN_TAIL }
                    #rt::model::Output::Scores(x) => { #rt::model::check_len("scores", x.len(), #c * #h * #w)?; &#steps_mod::SCORES_TAIL }
                    #rt::model::Output::Labels(x) => { #rt::model::check_len("labels", x.len(), #h * #w)?; &#steps_mod::SEGMENT_TAIL }
                };
                let picture = matches!(input, #rt::kernels::Input::Rgb8 { .. });
                let exec = #rt::model::exec(self.weights.as_slice(), self.isa, parallel, input, 3 * #h * #w, arena, Self::ARENA_BYTES, output)?;
                Self::body(&exec, picture)?;
                exec.step(tail)?;
                Ok(())
            }

            #entry_points
        }
    }
}

/// The public entry points: run / scores / segment, each from floats or an
/// 8-bit picture, serial or across a host's threads; each a call of `call`.
fn entry_points(model: &CompiledModel, rt: &TokenStream) -> TokenStream {
    let (c, h, w, lh, lw) = (model.classes, model.height, model.width, model.logits.h, model.logits.w);
    let outputs = [
        ("run", quote!(logits), quote!(f32), quote!(Logits), format!("Logits `[1, {c}, {lh}, {lw}]` NCHW")),
        (
            "scores",
            quote!(scores),
            quote!(f32),
            quote!(Scores),
            format!("Scores `[1, {c}, {h}, {w}]` NCHW (the logits bilinearly upsampled)"),
        ),
        (
            "segment",
            quote!(labels),
            quote!(u8),
            quote!(Labels),
            format!("Labels `[{h} * {w}]` (the class of every pixel)"),
        ),
    ];
    let picture_doc = format!(
        "a picture: interleaved 8-bit RGB `[{h}, {w}, 3]`, row-major, as image decoders give it. The first \
         convolution and the input-injection pools normalise it as they read it (`NORMALISATION`): no float \
         copy, the same arena, and bit for bit the result of the float entry point on the normalised picture."
    );
    let mut tokens = TokenStream::new();
    for (entry, out, out_ty, variant, what) in outputs {
        let inputs = [
            (
                "",
                quote!(input),
                quote!([f32]),
                quote!(Floats(input)),
                format!("an input `[1, 3, {h}, {w}]` NCHW, normalised (see `MEAN`)."),
            ),
            (
                "_rgb8",
                quote!(picture),
                quote!([u8]),
                quote!(Rgb8 { pixels: picture, normalisation: Self::NORMALISATION }),
                picture_doc.clone(),
            ),
        ];
        for (suffix, arg, arg_ty, input, of) in inputs {
            let serial = format_ident!("{entry}{suffix}");
            let parallel = format_ident!("{entry}{suffix}_parallel");
            let serial_doc = format!(" {what} of {of} Allocates nothing.");
            let parallel_doc = format!(
                " `{serial}`, each step split across `parallel`'s threads (bit-identical for every thread count)."
            );
            tokens.extend(quote! {
                #[doc = #serial_doc]
                pub fn #serial(&self, #arg: &#arg_ty, arena: &mut [f32], #out: &mut [#out_ty]) -> ::core::result::Result<(), #rt::ModelError> {
                    self.#parallel(#arg, arena, #out, None)
                }

                #[doc = #parallel_doc]
                pub fn #parallel(
                    &self,
                    #arg: &#arg_ty,
                    arena: &mut [f32],
                    #out: &mut [#out_ty],
                    parallel: Option<&dyn #rt::kernels::ParallelFor>,
                ) -> ::core::result::Result<(), #rt::ModelError> {
                    self.call(#rt::kernels::Input::#input, arena, #rt::model::Output::#variant(#out), parallel)
                }
            });
        }
    }
    tokens
}

/// A standalone Rust module for `model` (`cgnetc build --target rust`): the
/// same code `cgnet!` expands to, formatted, depending only on cgnet-runtime,
/// with the packed weights in `NAME.weights` beside it. Returns the files.
pub fn standalone(model: &CompiledModel) -> Vec<super::c::File> {
    let n = &model.name;
    let type_name = rust_type_name(model.spec.model_name());
    let decl = ModelDecl {
        attrs: Vec::new(),
        vis: syn::parse_quote!(pub),
        name: Ident::new(&type_name, Span::call_site()),
        spec: model.spec.clone(),
        weights: None,
        target: RustTarget::Native,
    };
    let blob = format!("{n}.weights");
    let tokens = expand(&decl, model, Emit::Standalone { weights_blob: &blob });
    let file: syn::File = syn::parse2(tokens).expect("expansions are valid Rust");
    let mut text: String = super::provenance(model).iter().map(|l| format!("// {l}\n")).collect();
    text.push_str(&format!(
        "// A standalone module: add `cgnet-runtime = \"{}\"` to Cargo.toml, put `{n}.rs` and `{blob}`\n\
         // in `src/`, and `mod {n};`. Then `{n}::{type_name}::new()` (see its methods).\n\n",
        env!("CARGO_PKG_VERSION")
    ));
    text.push_str(&prettyplease::unparse(&file));
    let bytes = model.weights.iter().flat_map(|v| v.to_le_bytes()).collect();
    vec![
        super::c::File { name: format!("{n}.rs"), contents: super::c::FileContents::Text(text) },
        super::c::File { name: blob, contents: super::c::FileContents::Binary(bytes) },
    ]
}

/// `camvid` -> `Camvid`, `m3_n21` -> `M3N21`; names that are already
/// upper camel case (`CamVid`) stay as they are.
fn rust_type_name(name: &str) -> String {
    let camel: String = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect();
    if camel.is_empty() || camel.starts_with(|c: char| c.is_ascii_digit()) {
        format!("Model{camel}")
    } else {
        camel
    }
}

/// `target: gpu`: the WGSL program as a `GpuPlan` and `on_gpu`, which sets
/// the model up on a device (every GPU resource created there, once).
fn gpu_entry_points(model: &CompiledModel, rt: &TokenStream) -> Result<TokenStream, String> {
    let plan = super::wgsl::plan(model).map_err(|e| format!("target gpu: {e}"))?;
    let kernel = |k: &cgnet_runtime::gpu::GpuKernel| {
        let (label, wgsl, [x, y, z]) = (&k.label, &k.wgsl, k.workgroups);
        quote! {
            #rt::gpu::GpuKernel { label: ::std::string::String::from(#label), wgsl: ::std::string::String::from(#wgsl), workgroups: [#x, #y, #z] }
        }
    };
    let body: Vec<TokenStream> = plan.body.iter().map(kernel).collect();
    let picture: Vec<TokenStream> = plan
        .picture
        .iter()
        .map(|(i, k)| {
            let (i, k) = (n(*i), kernel(k));
            quote!((#i, #k))
        })
        .collect();
    let [run, scores, segment] = [&plan.run, &plan.scores, &plan.segment].map(kernel);
    let [arena, input, logits, scores_floats, labels] =
        [plan.arena_floats, plan.input_floats, plan.logits_floats, plan.scores_floats, plan.labels].map(n);
    Ok(quote! {
        /// The program as WGSL compute kernels (made by cgnet's `back::wgsl`).
        pub fn gpu_plan() -> #rt::gpu::GpuPlan {
            #rt::gpu::GpuPlan {
                body: ::std::vec![#(#body),*],
                picture: ::std::vec![#(#picture),*],
                run: #run,
                scores: #scores,
                segment: #segment,
                arena_floats: #arena,
                input_floats: #input,
                logits_floats: #logits,
                scores_floats: #scores_floats,
                labels: #labels,
            }
        }

        /// Sets the model up on `gpu` (`cgnet::runtime::gpu::Gpu::new(Self::GPU_BUFFER_BYTES)`,
        /// or the host's device): buffers, pipelines and the weights, once. The session's
        /// `run` / `scores` / `segment` create no GPU resource. Needs cgnet's `gpu` feature.
        pub fn on_gpu(&self, gpu: &#rt::gpu::Gpu) -> ::core::result::Result<#rt::gpu::GpuSession, #rt::gpu::GpuError> {
            #rt::gpu::GpuSession::new(gpu, &Self::gpu_plan(), self.weights.as_slice())
        }

        /// The largest buffer the GPU program binds, in bytes (the limit to ask a device for).
        pub const GPU_BUFFER_BYTES: u64 = 4 * #arena as u64;
    })
}
